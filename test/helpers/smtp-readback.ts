/**
 * Finds a delivered message in the store by its outer Message-ID and checks the
 * round trip: decrypted with the group key it is the original, byte for byte, behind
 * the MX's trace headers (and only those).
 */
import { expect } from 'vitest';
import { MX_NAME, type Harness } from './smtp-harness.js';
import { fetchAllRaw } from './smtp-imap-read.js';
import { type OpensslGroup, opensslDecrypt } from './smtp-openssl-encryptor.js';

export function headerBlock(message: Buffer): string {
  const end = message.indexOf('\r\n\r\n');
  return message.subarray(0, end === -1 ? message.length : end).toString('utf8');
}

export async function storedMessages(harness: Harness, user: string): Promise<Buffer[]> {
  return fetchAllRaw(
    {
      port: harness.dovecot.imapPort,
      masterUser: harness.dovecot.masterUser,
      masterPassword: harness.dovecot.masterPassword,
    },
    user,
  );
}

export async function findStored(
  harness: Harness,
  user: string,
  messageId: string,
): Promise<Buffer[]> {
  return (await storedMessages(harness, user)).filter((message) =>
    headerBlock(message).includes(`<${messageId}>`),
  );
}

/** Asserts the decrypted content is trace headers + original; returns the trace block. */
export async function expectRoundTrip(
  stored: Buffer,
  original: Buffer,
  group: OpensslGroup,
): Promise<string> {
  expect(headerBlock(stored)).toMatch(/^content-type:[ \t]*application\/(x-)?pkcs7-mime/im);
  const content = await opensslDecrypt(stored, group);
  expect(content.length).toBeGreaterThan(original.length);
  const tail = content.subarray(content.length - original.length);
  expect(tail.equals(original)).toBe(true);
  const trace = content.subarray(0, content.length - original.length).toString('utf8');
  expect(trace.startsWith('Received: from ')).toBe(true);
  expect(trace).toContain(`by ${MX_NAME} with `);
  expect(trace).toContain(`Authentication-Results: ${MX_NAME};`);
  // In the original's own line endings (as its first line ends): never a mix.
  const lf = original.indexOf(10);
  const eol = lf > 0 && original[lf - 1] !== 13 ? '\n' : '\r\n';
  expect(trace.endsWith(eol)).toBe(true);
  for (const line of trace.slice(0, -eol.length).split(eol))
    expect(line).toMatch(/^([A-Za-z-]+: |[ \t])[^\r\n]*$/);
  return trace;
}
