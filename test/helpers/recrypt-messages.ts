/**
 * Sample messages for the recrypt tests: the data files under
 * test/fixtures/recrypt/messages, plus large ones generated deterministically (a seeded
 * PRNG, so every run sees the same bytes) rather than stored: a binary attachment of
 * ~1 MB and a ~10 MB message.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const MESSAGE_DIR = join(here, '..', 'fixtures', 'recrypt', 'messages');

export interface SampleMessage {
  name: string;
  bytes: Uint8Array;
}

/** Every .eml data file, by name. */
export function fixtureMessages(): SampleMessage[] {
  return readdirSync(MESSAGE_DIR)
    .filter((f) => f.endsWith('.eml'))
    .sort()
    .map((f) => ({ name: f, bytes: new Uint8Array(readFileSync(join(MESSAGE_DIR, f))) }));
}

/** xorshift32 bytes: deterministic "binary" content. */
export function pseudoRandomBytes(length: number, seed = 0x9e3779b9): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** A message with a base64 binary attachment of `attachmentBytes` bytes. */
export function messageWithAttachment(attachmentBytes: number, seed = 7): SampleMessage {
  const attachment = Buffer.from(pseudoRandomBytes(attachmentBytes, seed)).toString('base64');
  const lines = attachment.match(/.{1,76}/g) ?? [];
  const text =
    'From: sender@example.org\r\nTo: bob@example.net\r\nDate: Sun, 29 Nov 2026 06:00:00 +0000\r\n' +
    `Subject: attachment of ${attachmentBytes} bytes\r\nMessage-ID: <att-${attachmentBytes}@example.org>\r\n` +
    'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n' +
    '--b1\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n' +
    '--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n' +
    'Content-Disposition: attachment; filename="data.bin"\r\n\r\n' +
    lines.join('\r\n') +
    '\r\n--b1--\r\n';
  return {
    name: `attachment-${attachmentBytes}.eml`,
    bytes: new Uint8Array(Buffer.from(text, 'latin1')),
  };
}

/** A message of exactly `size` bytes with a raw 8-bit/binary body (NULs, bare CR/LF). */
export function messageOfSize(size: number, seed = 11): SampleMessage {
  const header = Buffer.from(
    `From: big@example.org\r\nTo: bob@example.net\r\nSubject: ${size} bytes\r\nMessage-ID: <size-${size}@example.org>\r\n\r\n`,
    'latin1',
  );
  const out = new Uint8Array(Math.max(size, header.length));
  out.set(header);
  out.set(pseudoRandomBytes(out.length - header.length, seed), header.length);
  return { name: `size-${size}.eml`, bytes: out.subarray(0, size) };
}

/** The full sample set: data files, 1 KB/1 MB attachments, a 10 MB message. */
export function allSampleMessages(): SampleMessage[] {
  return [
    ...fixtureMessages(),
    messageOfSize(1024),
    messageWithAttachment(1024 * 1024),
    messageOfSize(10 * 1024 * 1024),
  ];
}
