import { StoreError } from '../backend.js';
import { decodeModifiedUtf7, encodeModifiedUtf7 } from '../mutf7.js';

/**
 * Mailbox and user names → paths. API names are UTF-8 with '/' as hierarchy
 * delimiter; on disk a Maildir++ folder is `.<seg1>.<seg2>` with each segment in
 * modified UTF-7 (Dovecot's default layout=maildir++), INBOX is the Maildir itself.
 * Because '.' separates levels on disk, a '.' inside a segment is refused (Dovecot
 * does the same unless an escape character is configured).
 */

export const INBOX = 'INBOX';
const MAX_NAME_CHARS = 200;
const MAX_SEGMENT_DISK = 200;
const MAX_DISK_NAME = 250;
const MAX_DEPTH = 16;
// C0, DEL, C1 controls and the IMAP wildcards, which could never be LISTed back.
// eslint-disable-next-line no-control-regex
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f*%]/u;
// path separators and control characters have no place in a directory name
// eslint-disable-next-line no-control-regex
const BAD_USER_CHAR = /[/\\\u0000-\u001f\u007f]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Validates and normalises a mailbox name (INBOX case-insensitive). Throws StoreError('invalid-name'). */
export function normalizeMailboxName(name: string): string {
  const bad = (why: string): never => {
    throw new StoreError('invalid-name', `invalid mailbox name: ${why}`);
  };
  if (typeof name !== 'string' || name.length === 0) bad('empty');
  if (name.length > MAX_NAME_CHARS) bad('too long');
  if (FORBIDDEN.test(name)) bad('control or wildcard character');
  if (LONE_SURROGATE.test(name)) bad('not valid Unicode');
  const segments = name.split('/');
  if (segments.length > MAX_DEPTH) bad('too deep');
  for (const seg of segments) {
    if (seg.length === 0) bad('empty hierarchy level');
    if (seg.includes('.')) bad("'.' is not allowed in a level");
    if (seg.trim() !== seg) bad('leading or trailing space');
    if (encodeModifiedUtf7(seg).length > MAX_SEGMENT_DISK) bad('level too long');
  }
  if ((segments[0] as string).toUpperCase() === INBOX) segments[0] = INBOX;
  const normalized = segments.join('/');
  if (normalized !== INBOX && diskNameOf(normalized).length > MAX_DISK_NAME) bad('too long');
  return normalized;
}

/** Directory name under the Maildir for a normalised non-INBOX name. */
export function diskNameOf(name: string): string {
  return `.${name.split('/').map(encodeModifiedUtf7).join('.')}`;
}

/** The API name for a Maildir++ directory entry, or null when it is not a valid folder name. */
export function nameFromDisk(entry: string): string | null {
  if (!entry.startsWith('.') || entry === '.' || entry === '..') return null;
  const segments = entry.slice(1).split('.');
  const decoded: string[] = [];
  for (const seg of segments) {
    const d = decodeModifiedUtf7(seg);
    if (d === null || d.length === 0) return null;
    decoded.push(d);
  }
  try {
    const name = normalizeMailboxName(decoded.join('/'));
    return name === INBOX ? null : name;
  } catch {
    return null;
  }
}

/** Validates a user name used as a directory under the store root. */
export function validateUserName(user: string): string {
  if (
    typeof user !== 'string' ||
    user.length === 0 ||
    user.length > 255 ||
    user.startsWith('.') ||
    BAD_USER_CHAR.test(user)
  ) {
    throw new StoreError('no-such-user', 'invalid user name');
  }
  return user;
}
