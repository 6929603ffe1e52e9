/**
 * Which FETCH response items carry message body bytes the proxy must look at, and how
 * they are encoded. RFC 3501 §7.4.2 / RFC 9051 §7.5.2 / RFC 3516 (BINARY).
 */
import type { BodyForm } from './ports.js';

export interface BodyItem {
  /** Canonical section text used in cache keys and side fetches: '' | 'TEXT' | '1.2' … */
  section: string;
  /** BINARY sections are decoded content (DER for an application/pkcs7-mime part). */
  binary: boolean;
  form: BodyForm;
  /** First byte offset of the literal within the section (`<origin>`), 0 when absent. */
  origin: number;
}

const BODY_SECTION = /^(BODY|BINARY)\[([0-9.A-Z]*)\](?:<(\d{1,15})>)?$/;
const PART = /^[1-9][0-9]*(?:\.[1-9][0-9]*)*$/;

/** Parses an item name such as `BODY[]<65536>` or `RFC822.TEXT`; null when it carries no body. */
export function parseBodyItem(name: string): BodyItem | null {
  const upper = name.toUpperCase();
  if (upper === 'RFC822') return { section: '', binary: false, form: 'message', origin: 0 };
  if (upper === 'RFC822.TEXT') return { section: 'TEXT', binary: false, form: 'base64', origin: 0 };
  const match = BODY_SECTION.exec(upper);
  if (match === null) return null;
  const binary = match[1] === 'BINARY';
  const section = match[2] ?? '';
  const origin = match[3] === undefined ? 0 : Number(match[3]);
  // BINARY[] is the whole message (RFC 3516 decodes parts, not the message itself).
  if (section === '') return { section, binary, form: 'message', origin };
  // HEADER, HEADER.FIELDS, MIME, <part>.HEADER, <part>.MIME and <part>.TEXT (an
  // embedded message's text) never start with a CMS envelope of ours.
  if (section === 'TEXT' && !binary) return { section, binary, form: 'base64', origin };
  if (PART.test(section)) return { section, binary, form: binary ? 'der' : 'base64', origin };
  return null;
}

/** The FETCH item that re-reads the same section without setting \Seen. */
export function peekItemFor(item: BodyItem, length: number): string {
  return `${item.binary ? 'BINARY.PEEK' : 'BODY.PEEK'}[${item.section}]<0.${length}>`;
}
