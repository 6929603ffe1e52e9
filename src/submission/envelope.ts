/**
 * The one S/MIME message submission sends to everyone with a key: the complete message
 * encrypted once (`envelopeForGroup` with several certificates: one content key, two
 * recipient infos per certificate, docs/design.md §2), inside an outer message that
 * repeats the fields a client needs to list and thread it (OUTER_HEADER_FIELDS, folding
 * kept, CRLF line ends), as the MX's envelope does.
 */
import {
  OUTER_HEADER_FIELDS,
  envelopeForGroup,
  type KeyTransportRecipient,
} from '../recrypt/index.js';

const LINE = 76;

function outerHeaders(message: Uint8Array, hideSubject: boolean): string {
  const text = Buffer.from(message.buffer, message.byteOffset, message.byteLength).toString(
    'latin1',
  );
  const blank = /\r?\n\r?\n/.exec(text);
  const header = blank === null ? text : text.slice(0, blank.index);
  const fields: string[][] = [];
  let keep = false;
  for (const line of header.split(/\r?\n/)) {
    if (/^[ \t]/.test(line)) {
      if (keep) fields[fields.length - 1]!.push(line);
      continue;
    }
    const name = line
      .slice(0, Math.max(0, line.indexOf(':')))
      .trim()
      .toLowerCase();
    keep = OUTER_HEADER_FIELDS.includes(name);
    if (!keep) continue;
    if (name === 'subject' && hideSubject) {
      fields.push(['Subject: [...]']);
      keep = false;
    } else fields.push([line]);
  }
  return fields.map((lines) => lines.join('\r\n')).join('\r\n');
}

/**
 * `certificates` are P-256 (group or S/MIME) certificates, two KeyAgreeRecipientInfos
 * each; `keyTransport` RSA recipients, one KeyTransRecipientInfo each.
 */
export function wrapForGroups(
  message: Uint8Array,
  certificates: readonly Uint8Array[],
  hideSubject: boolean,
  keyTransport: readonly KeyTransportRecipient[] = [],
): Uint8Array {
  const der = envelopeForGroup(message, certificates, { keyTransport });
  const base64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
  const lines: string[] = [];
  for (let at = 0; at < base64.length; at += LINE) lines.push(base64.slice(at, at + LINE));
  const fields = outerHeaders(message, hideSubject);
  const head =
    (fields === '' ? '' : `${fields}\r\n`) +
    'MIME-Version: 1.0\r\n' +
    'Content-Type: application/pkcs7-mime; smime-type=enveloped-data;\r\n' +
    ' name="smime.p7m"\r\n' +
    'Content-Transfer-Encoding: base64\r\n' +
    'Content-Disposition: attachment; filename="smime.p7m"\r\n\r\n';
  return Buffer.concat([
    Buffer.from(head, 'latin1'),
    Buffer.from(lines.join('\r\n') + '\r\n', 'latin1'),
  ]);
}
