import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GatewayKey, openKeyStore } from '../../src/keystore/index.js';
import { wrapRecryptionKey } from '../../src/keystore/key-wrapping.js';
import { MIGRATIONS, SCHEMA_VERSION } from '../../src/keystore/sqlite/schema.js';
import { tempDir } from '../helpers/tmp.js';
import {
  fixture,
  ownerCertificates,
  randomRecipientIdHex,
  randomScalar,
  recipientIdHex,
  uniqueAddress,
} from './fixtures.js';

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
      'DROP TABLE rekey_requests; DROP TABLE pending_rotations; DROP TABLE user_groups; DROP TABLE pairing_requests; DROP TRIGGER users_leave_lists; DROP TABLE list_keys; DROP TABLE list_members; DROP TABLE list_groups; DROP TABLE lists; UPDATE schema_version SET version = 1',
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

  it('upgrades a version-2 file (lists, local members only): keys kept, remote members possible', async () => {
    const path = join(dir.path, 'v2.sqlite');
    const key = GatewayKey.generate();
    // Build the file exactly as a version-2 gateway left it, with a list and a member.
    const raw = new Database(path);
    raw.pragma('foreign_keys = ON');
    raw.exec(MIGRATIONS[0]! + MIGRATIONS[1]!);
    raw.exec('CREATE TABLE schema_version (version INTEGER NOT NULL)');
    raw.prepare('INSERT INTO schema_version (version) VALUES (2)').run();
    const owner = ownerCertificates();
    const addUser = raw.prepare(
      `INSERT INTO users (address, display_name, enrolment, owner_ca, group_cert, group_id,
         owner_key_spki, created) VALUES (?, '', 'enrolled', ?, ?, ?, ?, 1)`,
    );
    for (const address of ['owner@example.org', 'member@example.org'])
      addUser.run(
        address,
        owner.ownerCaCertificate,
        owner.groupCertificate,
        owner.groupId,
        owner.ownerKeySpki,
      );
    const listGroup = randomRecipientIdHex();
    const memberGroup = randomRecipientIdHex();
    const rk = randomScalar();
    raw.exec(
      `INSERT INTO lists VALUES ('dev@example.org', 'Dev', 'owner@example.org', 'members', '', '${listGroup}', 1)`,
    );
    raw
      .prepare('INSERT INTO list_groups VALUES (?, ?, ?)')
      .run('dev@example.org', listGroup, fixture('group.der'));
    raw
      .prepare('INSERT INTO list_members VALUES (?, ?, ?, 2)')
      .run('dev@example.org', 'member@example.org', memberGroup);
    raw
      .prepare('INSERT INTO list_keys VALUES (?, ?, ?, ?)')
      .run(
        'dev@example.org',
        'member@example.org',
        listGroup,
        wrapRecryptionKey(key, rk, { groupId: listGroup, targetId: memberGroup }),
      );
    raw.close();

    const store = await openKeyStore({ kind: 'sqlite', path }, { gatewayKey: key });
    expect(await store.listKeysForMember('member@example.org')).toEqual([
      { list: 'dev@example.org', groupId: listGroup, memberGroupId: memberGroup, rk },
    ]);
    const remote = fixture('device-a.der');
    const remoteRk = randomScalar();
    await store.putRemoteListMember(
      'dev@example.org',
      'far@elsewhere.example',
      remote,
      recipientIdHex(remote),
      remoteRk,
    );
    expect((await store.listMembers('dev@example.org')).map((m) => m.address)).toEqual([
      'far@elsewhere.example',
      'member@example.org',
    ]);
    // Removing a user still removes their membership and keys (now by trigger); the
    // remote member stays.
    await store.removeUser('member@example.org');
    expect(await store.listKeysForMember('member@example.org')).toEqual([]);
    expect((await store.listMembers('dev@example.org')).map((m) => m.address)).toEqual([
      'far@elsewhere.example',
    ]);
    expect((await store.listKeysForMember('far@elsewhere.example')).map((k) => k.rk)).toEqual([
      remoteRk,
    ]);
    await store.close();
    const check = new Database(path);
    expect(check.prepare('SELECT version FROM schema_version').all()).toEqual([
      { version: SCHEMA_VERSION },
    ]);
    expect(check.pragma('foreign_key_check')).toEqual([]);
    check.close();
  });
});
