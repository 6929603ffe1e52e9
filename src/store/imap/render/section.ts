import type { MailboxHandle } from '../../backend.js';
import { headerFields, messageAt, partByPath } from '../../mime/index.js';
import type { ByteRange, MessageStructure } from '../../mime/types.js';
import type { Section } from '../commands/types.js';

/** BODY[section] as it is echoed in the response (`BODY[1.HEADER.FIELDS (SUBJECT)]`). */
export function sectionName(section: Section): string {
  const parts: string[] = [];
  if (section.path.length > 0) parts.push(section.path.join('.'));
  if (section.specifier !== '') parts.push(section.specifier);
  let name = parts.join('.');
  if (section.specifier.startsWith('HEADER.FIELDS')) name += ` (${section.fields.join(' ')})`;
  return name;
}

const EMPTY = new Uint8Array(0);

/**
 * The bytes a section names (RFC 3501 §6.4.5), read through `handle.read` with the
 * byte ranges of the stored structure, so only the part asked for is read. A part
 * that does not exist yields an empty string, as Dovecot answers. The whole message
 * (`BODY[]`, RFC822) needs only its size, so `structure` may then be null.
 */
export async function readSection(
  handle: MailboxHandle,
  uid: number,
  size: number,
  structure: MessageStructure | null,
  section: Section,
  partial: { start: number; length: number } | null,
): Promise<Uint8Array> {
  const range =
    section.specifier === '' && section.path.length === 0
      ? { start: 0, end: size }
      : sectionRange(need(structure), section);
  if (range === null) return EMPTY;
  if (section.specifier.startsWith('HEADER.FIELDS')) {
    const header = await readRange(handle, uid, range);
    const selected = headerFields(
      header,
      { start: 0, end: header.length },
      section.fields,
      section.specifier === 'HEADER.FIELDS.NOT',
    );
    return slice(selected, partial);
  }
  if (partial !== null) {
    const start = Math.min(range.start + partial.start, range.end);
    const end = Math.min(start + partial.length, range.end);
    return readRange(handle, uid, { start, end });
  }
  return readRange(handle, uid, range);
}

function need(structure: MessageStructure | null): MessageStructure {
  if (structure === null) throw new Error('this section needs the message structure');
  return structure;
}

function sectionRange(structure: MessageStructure, section: Section): ByteRange | null {
  switch (section.specifier) {
    case '':
      return partByPath(structure, section.path)?.body ?? null;
    case 'MIME':
      return partByPath(structure, section.path)?.header ?? null;
    case 'TEXT':
      return messageAt(structure, section.path)?.body ?? null;
    default:
      return messageAt(structure, section.path)?.header ?? null;
  }
}

function slice(bytes: Uint8Array, partial: { start: number; length: number } | null): Uint8Array {
  if (partial === null) return bytes;
  return bytes.subarray(
    Math.min(partial.start, bytes.length),
    Math.min(partial.start + partial.length, bytes.length),
  );
}

async function readRange(
  handle: MailboxHandle,
  uid: number,
  range: ByteRange,
): Promise<Uint8Array> {
  if (range.end <= range.start) return EMPTY;
  return handle.read(uid, { start: range.start, length: range.end - range.start });
}
