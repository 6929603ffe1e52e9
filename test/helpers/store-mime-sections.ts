import {
  headerFields,
  messageAt,
  partByPath,
  type MessageStructure,
} from '../../src/store/mime/index.js';

/**
 * Resolves a BODY[section] spec (`1.2`, `2.HEADER`, `HEADER.FIELDS (A B)`, `1.MIME`, …)
 * against a parsed structure the way src/store/mime/README.md tells the IMAP layer to;
 * null when the part does not exist. Shared by the MIME tests.
 */
export function resolveSection(bytes: Buffer, s: MessageStructure, spec: string): string | null {
  const m = /^((?:\d+\.)*\d+)?\.?(HEADER\.FIELDS(?:\.NOT)? \(([^)]*)\)|HEADER|TEXT|MIME)?$/.exec(
    spec,
  );
  if (m === null) throw new Error(`bad spec ${spec}`);
  const path = m[1] === undefined ? [] : m[1].split('.').map(Number);
  const text = (r: { start: number; end: number }): string =>
    bytes.subarray(r.start, r.end).toString('utf8');
  const kind = m[2];
  if (kind === undefined) {
    const part = partByPath(s, path);
    return part === null ? null : text(path.length === 0 ? { start: 0, end: s.size } : part.body);
  }
  if (kind === 'MIME') {
    const part = partByPath(s, path);
    return part === null ? null : text(part.header);
  }
  const msg = messageAt(s, path);
  if (msg === null) return null;
  if (kind === 'HEADER') return text(msg.header);
  if (kind === 'TEXT') return text(msg.body);
  const names = (m[3] as string).split(' ');
  const headerBytes = bytes.subarray(msg.header.start, msg.header.end);
  const selected = headerFields(
    headerBytes,
    { start: 0, end: headerBytes.length },
    names,
    kind.includes('.NOT'),
  );
  return Buffer.from(selected).toString('utf8');
}
