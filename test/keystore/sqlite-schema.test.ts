import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GatewayKey, openKeyStore } from '../../src/keystore/index.js';
import { tempDir } from '../helpers/tmp.js';
import { uniqueAddress } from './fixtures.js';

describe('SQLite schema', () => {
  const dir = tempDir('recrypt-schema-');
  afterAll(() => dir.remove());

  it('migrates a new file, keeps data on reopen, and refuses a newer schema', async () => {
    const path = join(dir.path, 'ks.sqlite');
    const key = GatewayKey.generate();
    const first = await openKeyStore({ kind: 'sqlite', path }, { gatewayKey: key });
    const user = await first.addUser({ address: uniqueAddress() });
    await first.close();

    const raw = new Database(path);
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(raw.prepare('SELECT version FROM schema_version').all()).toEqual([{ version: 1 }]);
    raw.close();

    const second = await openKeyStore({ kind: 'sqlite', path }, { gatewayKey: key });
    expect(await second.getUser(user.address)).toEqual(user);
    await second.close();

    const bump = new Database(path);
    bump.prepare('UPDATE schema_version SET version = 99').run();
    bump.close();
    await expect(openKeyStore({ kind: 'sqlite', path }, { gatewayKey: key })).rejects.toThrow(
      /newer/,
    );
  });
});
