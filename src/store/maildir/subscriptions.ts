import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Disk } from './disk.js';

/**
 * The Maildir's `subscriptions` file in Dovecot 2.x's version 2 layout: a `V\t2` line,
 * an empty line, then one mailbox per line with hierarchy levels separated by TAB.
 * Version-1 files (one name per line) are read too. Written atomically.
 */

export async function readSubscriptions(maildir: string): Promise<Set<string>> {
  let text: string;
  try {
    text = await readFile(join(maildir, 'subscriptions'), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Set();
    throw err;
  }
  const lines = text.split('\n');
  if (lines[0] === 'V\t2') lines.splice(0, 2);
  return new Set(lines.filter((l) => l.length > 0).map((l) => l.split('\t').join('/')));
}

export async function writeSubscriptions(
  disk: Disk,
  maildir: string,
  names: Set<string>,
): Promise<void> {
  const body = [...names]
    .sort()
    .map((n) => `${n.split('/').join('\t')}\n`)
    .join('');
  await disk.replaceFile(join(maildir, 'subscriptions'), `V\t2\n\n${body}`);
}
