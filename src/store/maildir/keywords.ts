import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Disk } from './disk.js';

/**
 * Dovecot's per-mailbox `dovecot-keywords`: lines `<index> <keyword>`; index i is file
 * name letter `a`+i. Written atomically; unreadable lines are skipped.
 */
export async function readKeywords(dir: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(join(dir, 'dovecot-keywords'), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\d+) (\S+)$/.exec(line.trim());
    if (m === null) continue;
    const index = Number(m[1]);
    if (index < 26) out[index] = m[2] as string;
  }
  // holes (a removed line) would shift letters: keep positions, fill with unusable names
  return Array.from(out, (k, i) => k ?? `\u0000unused-${i}`);
}

export async function writeKeywords(disk: Disk, dir: string, keywords: string[]): Promise<void> {
  const text = keywords.map((k, i) => (k.startsWith('\u0000') ? '' : `${i} ${k}\n`)).join('');
  await disk.replaceFile(join(dir, 'dovecot-keywords'), text);
}
