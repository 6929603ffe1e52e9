import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GatewayKey, openKeyStore } from '../../src/keystore/index.js';
import { SCHEMA_VERSION } from '../../src/keystore/sqlite/schema.js';
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
    expect(raw.prepare('SELECT version FROM schema_version').all()).toEqual([
      { version: SCHEMA_VERSION },
    ]);
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

  it('upgrades a version-1 file (before lists) and keeps its users', async () => {
    const path = join(dir.path, 'v1.sqlite');
    const key = GatewayKey.generate();
    const first = await openKeyStore({ kind: 'sqlite', path }, { gatewayKey: key });
    const user = await first.addUser({ address: uniqueAddress() });
    await first.close();
    // Take the file back to what migration 1 alone made.
    const raw = new Database(path);
    raw.exec(
      'DROP TABLE list_keys; DROP TABLE list_members; DROP TABLE list_groups; DROP TABLE lists; UPDATE schema_version SET version = 1',
    );
    raw.close();

    const second = await openKeyStore({ kind: 'sqlite', path }, { gatewayKey: key });
    expect(await second.getUser(user.address)).toEqual(user);
    expect(await second.listLists()).toEqual([]);
    await second.close();
    const check = new Database(path);
    expect(check.prepare('SELECT version FROM schema_version').all()).toEqual([
      { version: SCHEMA_VERSION },
    ]);
    check.close();
  });
});
