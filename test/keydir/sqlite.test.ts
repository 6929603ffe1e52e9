/** The SQLite key directory against the contract (contract.ts), and across reopening. */
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { SqliteKeyDirectory } from '../../src/keydir/index.js';
import { tempDir } from '../helpers/tmp.js';
import { keyDirectoryContract, NOW, record } from './contract.js';

const tmp = tempDir('recrypt-keydir-sqlite-');
afterAll(() => tmp.remove());
let n = 0;

keyDirectoryContract('sqlite', (now) =>
  Promise.resolve(new SqliteKeyDirectory(join(tmp.path, `dir-${n++}.sqlite`), now)),
);

it('what was harvested is there after a restart', async () => {
  const path = join(tmp.path, 'reopen.sqlite');
  const kept = record('ivy@c.test', 1);
  const first = new SqliteKeyDirectory(path, () => NOW);
  await first.remember(kept, 3);
  await first.close();
  const second = new SqliteKeyDirectory(path, () => NOW);
  expect((await second.forAddress('ivy@c.test')).map((r) => r.fingerprint)).toEqual([
    kept.fingerprint,
  ]);
  await second.close();
});
