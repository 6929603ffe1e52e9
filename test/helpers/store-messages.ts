import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const STORE_IMAP_FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'store-imap');

/** The sample messages, sorted by file name, with CRLF line endings as the store keeps them. */
export function sampleMessages(): Buffer[] {
  const dir = join(STORE_IMAP_FIXTURES, 'messages');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.eml'))
    .sort()
    .map((f) => Buffer.from(readFileSync(join(dir, f), 'utf8').replace(/\r?\n/g, '\r\n'), 'utf8'));
}
