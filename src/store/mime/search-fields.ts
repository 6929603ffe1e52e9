/**
 * What SEARCH compares of a message's header, derived once when the message is stored
 * and kept in the maildir index (see ../maildir/index-db.ts), so that a SEARCH FROM /
 * TO / CC / BCC / SUBJECT / SENT* over a whole mailbox reads neither a message file nor
 * a parsed structure, and a SEARCH HEADER rules out most messages without reading them.
 * Pure: structure and header bytes in, plain data out.
 */
import { decodeWords } from './decode.js';
import type { Address, MessageStructure } from './types.js';

/** Headers larger than this keep no lower-cased copy: SEARCH HEADER reads them from the file. */
export const MAX_INDEXED_HEADER = 64 * 1024;

export interface SearchFields {
  /**
   * FROM / TO / CC / BCC: the envelope's addresses as SEARCH matches them,
   * `<decoded name> <mailbox@host>` joined by `, `, lower-cased.
   */
  from: string;
  to: string;
  cc: string;
  bcc: string;
  /** The decoded Subject, lower-cased ('' without one). */
  subject: string;
  /** SENTBEFORE / SENTON / SENTSINCE: the day of the Date header (see sentDayOf), or null. */
  sentDay: number | null;
  /**
   * The top-level header block read as latin1 and lower-cased, for a first test of
   * SEARCH HEADER (any field, Message-ID included); null when larger than MAX_INDEXED_HEADER.
   */
  header: string | null;
}

export type SearchField = keyof SearchFields;

/** The address fields, keyed as SEARCH's keys name them. */
export const ADDRESS_FIELDS = ['from', 'to', 'cc', 'bcc'] as const;
export type AddressField = (typeof ADDRESS_FIELDS)[number];

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

/** Midnight UTC of the date's UTC day. */
export function dayOf(d: Date): number {
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
}

/**
 * The day of the Date header as written, its zone ignored: RFC 3501 §6.4.4 compares
 * "the date of the Date: header (disregarding time and timezone)" (Dovecot does the
 * same). A date-time that does not read as RFC 5322's `day month year` falls back to
 * Date.parse in UTC.
 */
export function sentDayOf(date: string): number | null {
  const m = /(\d{1,2})\s+([a-z]{3})[a-z]*\s+(\d{2,4})\b/i.exec(date.replace(/\([^)]*\)/g, ' '));
  const month = m === null ? -1 : MONTHS.indexOf((m[2] as string).toLowerCase());
  if (m !== null && month >= 0) {
    let year = Number(m[3]);
    // RFC 5322 §4.3: two-digit years below 50 are 20xx, three-digit ones add 1900
    if (year < 50) year += 2000;
    else if (year < 1000) year += 1900;
    return Date.UTC(year, month, Number(m[1]));
  }
  const t = Date.parse(date.replace(/\([^)]*\)/g, ''));
  return Number.isNaN(t) ? null : dayOf(new Date(t));
}

/** An address list as SEARCH FROM / TO / CC / BCC match it (before lower-casing). */
export function addressText(list: Address[]): string {
  return list
    .map(
      (a) =>
        `${a.name === null ? '' : `${decodeWords(a.name)} `}<${a.mailbox ?? ''}@${a.host ?? ''}>`,
    )
    .join(', ');
}

/** The decoded Subject as SEARCH SUBJECT matches it (before lower-casing). */
export function subjectText(structure: MessageStructure): string {
  const subject = structure.envelope.subject;
  return subject === null ? '' : decodeWords(subject);
}

/** SearchFields of a message from its structure and its top-level header bytes. */
export function searchFieldsOf(structure: MessageStructure, header: Uint8Array): SearchFields {
  const env = structure.envelope;
  return {
    from: addressText(env.from).toLowerCase(),
    to: addressText(env.to).toLowerCase(),
    cc: addressText(env.cc).toLowerCase(),
    bcc: addressText(env.bcc).toLowerCase(),
    subject: subjectText(structure).toLowerCase(),
    sentDay: env.date === null ? null : sentDayOf(env.date),
    header: indexedHeader(header),
  };
}

function indexedHeader(header: Uint8Array): string | null {
  if (header.length > MAX_INDEXED_HEADER) return null;
  const text = Buffer.from(header.buffer, header.byteOffset, header.length).toString('latin1');
  // a NUL would not survive every text API on the way: such a header is read from the file
  return text.includes('\u0000') ? null : text.toLowerCase();
}

/** The top-level header block of a whole message. */
export function headerOf(structure: MessageStructure, message: Uint8Array): Uint8Array {
  return message.subarray(structure.root.header.start, structure.root.header.end);
}
