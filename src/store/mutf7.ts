/**
 * IMAP modified UTF-7 (RFC 3501 §5.1.3): mailbox names on the IMAP wire and, as Dovecot
 * writes them, Maildir++ folder names on disk. Shared by the protocol layer and storage.
 * Hand-written: the algorithm is 40 lines and no maintained package for it is among the
 * project's dependencies.
 */

function toModifiedBase64(units: number[]): string {
  const bytes = Buffer.alloc(units.length * 2);
  units.forEach((u, i) => bytes.writeUInt16BE(u, i * 2));
  return bytes.toString('base64').replace(/=+$/, '').replace(/\//g, ',');
}

export function encodeModifiedUtf7(input: string): string {
  let out = '';
  let pending: number[] = [];
  const flush = (): void => {
    if (pending.length > 0) out += `&${toModifiedBase64(pending)}-`;
    pending = [];
  };
  for (let i = 0; i < input.length; i++) {
    const code = input.charCodeAt(i);
    if (code >= 0x20 && code <= 0x7e) {
      flush();
      out += code === 0x26 ? '&-' : input[i];
    } else {
      pending.push(code);
    }
  }
  flush();
  return out;
}

/** Decodes modified UTF-7; returns null for malformed input (so callers can refuse it). */
export function decodeModifiedUtf7(input: string): string | null {
  let out = '';
  let i = 0;
  while (i < input.length) {
    const ch = input[i] as string;
    const code = ch.charCodeAt(0);
    if (code < 0x20 || code > 0x7e) return null;
    if (ch !== '&') {
      out += ch;
      i++;
      continue;
    }
    const end = input.indexOf('-', i + 1);
    if (end === -1) return null;
    const chunk = input.slice(i + 1, end);
    if (chunk.length === 0) {
      out += '&';
    } else {
      if (!/^[A-Za-z0-9+,]+$/.test(chunk)) return null;
      const bytes = Buffer.from(chunk.replace(/,/g, '/'), 'base64');
      if (bytes.length % 2 !== 0 || bytes.length === 0) return null;
      for (let j = 0; j < bytes.length; j += 2) out += String.fromCharCode(bytes.readUInt16BE(j));
    }
    i = end + 1;
  }
  return out;
}
