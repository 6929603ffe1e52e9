/**
 * The headers a list adds to a plaintext post before it is encrypted: List-Id
 * (RFC 2919), List-Post, List-Help, List-Unsubscribe, List-Archive (RFC 2369) and the
 * optional subject tag. Any List-* field the sender put in is dropped first, so members'
 * clients see only the list's own. Bytes in, bytes out; the body is untouched.
 */

export interface ListHeaderInfo {
  address: string;
  displayName: string;
  /** announce lists advertise `List-Post: NO` (RFC 2369 §3.4). */
  acceptsPosts: boolean;
  subjectTag: string;
  /** RFC 2369 List-Archive URL, e.g. imap://gw.example.org/…; omitted when undefined. */
  archiveUrl?: string;
}

const LIST_FIELDS = /^list-(id|post|help|unsubscribe|subscribe|owner|archive)$/i;

function headerEnd(message: Buffer): { end: number; eol: string } {
  const crlf = message.indexOf('\r\n\r\n');
  const lf = message.indexOf('\n\n');
  if (crlf !== -1 && (lf === -1 || crlf < lf)) return { end: crlf + 2, eol: '\r\n' };
  if (lf !== -1) return { end: lf + 1, eol: '\n' };
  return { end: message.length, eol: '\r\n' };
}

/** A quoted-string phrase for List-Id, or nothing when the name is empty. */
function phrase(name: string): string {
  // Plain ASCII only here; other names are left out rather than mis-encoded.
  if (name === '' || !/^[\x20-\x7e]*$/.test(name)) return '';
  return `"${name.replace(/["\\]/g, '\\$&')}" `;
}

export function listHeaders(info: ListHeaderInfo): string[] {
  const [local, domain] = [
    info.address.slice(0, info.address.lastIndexOf('@')),
    info.address.slice(info.address.lastIndexOf('@') + 1),
  ];
  const listId = `${local.replace(/[^A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]/g, '-')}.${domain}`;
  const fields = [
    `List-Id: ${phrase(info.displayName)}<${listId}>`,
    `List-Post: ${info.acceptsPosts ? `<mailto:${info.address}>` : 'NO'}`,
    `List-Help: <mailto:${local}-owner@${domain}?subject=help>`,
    // src/lists/unsubscribe.ts: a mail there starts the confirmed removal.
    `List-Unsubscribe: <mailto:${local}-unsubscribe@${domain}?subject=unsubscribe>`,
    `List-Owner: <mailto:${local}-owner@${domain}>`,
  ];
  if (info.archiveUrl !== undefined) fields.push(`List-Archive: <${info.archiveUrl}>`);
  return fields;
}

export function addListHeaders(message: Uint8Array, info: ListHeaderInfo): Buffer {
  const bytes = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  const { end, eol } = headerEnd(bytes);
  const lines = bytes.subarray(0, end).toString('latin1').split(eol);
  if (lines.at(-1) === '') lines.pop();
  // Group folded continuation lines with their field.
  const fields: string[][] = [];
  for (const line of lines) {
    if (/^[ \t]/.test(line) && fields.length > 0) fields.at(-1)!.push(line);
    else fields.push([line]);
  }
  const nameOf = (field: string[]): string =>
    field[0]!.slice(0, Math.max(0, field[0]!.indexOf(':'))).trim();
  const kept = fields.filter((field) => !LIST_FIELDS.test(nameOf(field)));
  // The header block is handled as latin1 (byte for byte); the tag arrives as text.
  const tag = Buffer.from(info.subjectTag, 'utf8').toString('latin1');
  if (tag !== '') {
    const subject = kept.find((field) => nameOf(field).toLowerCase() === 'subject');
    if (subject === undefined) kept.push([`Subject: ${tag}`]);
    else if (!subject.join(' ').includes(tag)) {
      const colon = subject[0]!.indexOf(':');
      subject[0] =
        `${subject[0]!.slice(0, colon + 1)} ${tag} ${subject[0]!.slice(colon + 1).trimStart()}`.trimEnd();
    }
  }
  const head = [...listHeaders(info), ...kept.map((field) => field.join(eol))].join(eol) + eol;
  return Buffer.concat([Buffer.from(head, 'latin1'), bytes.subarray(end)]);
}
