/**
 * The SQLite schema as an ordered list of migrations. `schema_version` holds the number
 * applied; opening a file runs the missing ones in one transaction. Append, never edit.
 *
 * Recryption keys are kept per kind of target: `device_keys` (group × device, owned by
 * the device row, so deleting a device or user cascades). Lists add
 * `lists` and `list_keys` (list group × member group), wrapped the same way with the
 * member group's RecipientId as the binding target; a remote member's target is their
 * own certificate's IssuerAndSerialNumber (migration 3).
 */
import type Database from 'better-sqlite3';

/** Exported for the tests that build a file as an older gateway left it. */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE users (
    address        TEXT PRIMARY KEY,
    display_name   TEXT NOT NULL,
    enrolment      TEXT NOT NULL CHECK (enrolment IN ('pending', 'enrolled')),
    owner_ca       BLOB,
    group_cert     BLOB,
    group_id       TEXT,
    owner_key_spki BLOB,
    created        INTEGER NOT NULL
  );
  CREATE TABLE enrolment_tokens (
    address    TEXT PRIMARY KEY REFERENCES users(address) ON DELETE CASCADE,
    token_hash TEXT NOT NULL,
    expires    INTEGER NOT NULL,
    used       INTEGER
  );
  CREATE TABLE devices (
    owner           TEXT NOT NULL REFERENCES users(address) ON DELETE CASCADE,
    id              TEXT NOT NULL,
    name            TEXT NOT NULL,
    certificate     BLOB NOT NULL,
    device_id       TEXT NOT NULL,
    client          TEXT NOT NULL CHECK (client IN ('standard', 'outlook')),
    credential_hash TEXT NOT NULL,
    created         INTEGER NOT NULL,
    last_seen       INTEGER,
    revoked         INTEGER,
    PRIMARY KEY (owner, id),
    UNIQUE (owner, device_id)
  );
  CREATE UNIQUE INDEX devices_active_name ON devices(owner, name) WHERE revoked IS NULL;
  CREATE TABLE device_keys (
    owner    TEXT NOT NULL,
    device   TEXT NOT NULL,
    group_id TEXT NOT NULL,
    wrapped  BLOB NOT NULL,
    PRIMARY KEY (owner, device, group_id),
    FOREIGN KEY (owner, device) REFERENCES devices(owner, id) ON DELETE CASCADE
  );
  CREATE TABLE profiles (
    address  TEXT PRIMARY KEY REFERENCES users(address) ON DELETE CASCADE,
    document TEXT NOT NULL
  );
  CREATE TABLE nonces (
    key     TEXT PRIMARY KEY,
    expires INTEGER NOT NULL
  );
  CREATE INDEX nonces_expires ON nonces(expires);
  `,
  `
  CREATE TABLE lists (
    address      TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    owner        TEXT NOT NULL REFERENCES users(address) ON DELETE CASCADE,
    policy       TEXT NOT NULL CHECK (policy IN ('members', 'moderated', 'announce', 'open')),
    subject_tag  TEXT NOT NULL,
    group_id     TEXT NOT NULL,
    created      INTEGER NOT NULL
  );
  CREATE TABLE list_groups (
    list        TEXT NOT NULL REFERENCES lists(address) ON DELETE CASCADE,
    group_id    TEXT NOT NULL,
    certificate BLOB NOT NULL,
    PRIMARY KEY (list, group_id)
  );
  CREATE TABLE list_members (
    list            TEXT NOT NULL REFERENCES lists(address) ON DELETE CASCADE,
    member          TEXT NOT NULL REFERENCES users(address) ON DELETE CASCADE,
    member_group_id TEXT NOT NULL,
    joined          INTEGER NOT NULL,
    PRIMARY KEY (list, member)
  );
  CREATE INDEX list_members_member ON list_members(member);
  CREATE TABLE list_keys (
    list     TEXT NOT NULL,
    member   TEXT NOT NULL,
    group_id TEXT NOT NULL,
    wrapped  BLOB NOT NULL,
    PRIMARY KEY (list, member, group_id),
    FOREIGN KEY (list, member) REFERENCES list_members(list, member) ON DELETE CASCADE
  );
  `,
  // Remote members (not users here): list_members loses its foreign key to users and
  // gains the member's certificate. SQLite cannot drop a foreign key in place, so both
  // membership tables are rebuilt (list_keys first: dropping list_members with foreign
  // keys on would cascade into it). A trigger keeps "removing a user removes their
  // local memberships".
  `
  CREATE TABLE list_members_v3 (
    list            TEXT NOT NULL REFERENCES lists(address) ON DELETE CASCADE,
    member          TEXT NOT NULL,
    member_group_id TEXT NOT NULL,
    certificate     BLOB,
    joined          INTEGER NOT NULL,
    PRIMARY KEY (list, member)
  );
  CREATE TABLE list_keys_v3 (
    list     TEXT NOT NULL,
    member   TEXT NOT NULL,
    group_id TEXT NOT NULL,
    wrapped  BLOB NOT NULL,
    PRIMARY KEY (list, member, group_id),
    FOREIGN KEY (list, member) REFERENCES list_members_v3(list, member) ON DELETE CASCADE
  );
  INSERT INTO list_members_v3 (list, member, member_group_id, certificate, joined)
    SELECT list, member, member_group_id, NULL, joined FROM list_members;
  INSERT INTO list_keys_v3 (list, member, group_id, wrapped)
    SELECT list, member, group_id, wrapped FROM list_keys;
  DROP TABLE list_keys;
  DROP TABLE list_members;
  ALTER TABLE list_members_v3 RENAME TO list_members;
  ALTER TABLE list_keys_v3 RENAME TO list_keys;
  CREATE INDEX list_members_member ON list_members(member);
  CREATE TRIGGER users_leave_lists AFTER DELETE ON users BEGIN
    DELETE FROM list_members WHERE member = OLD.address AND certificate IS NULL;
  END;
  `,
  // Pending device pairings (keystore/pairing.ts): one JSON record each, with τ wrapped.
  `
  CREATE TABLE pairing_requests (
    owner   TEXT NOT NULL REFERENCES users(address) ON DELETE CASCADE,
    id      TEXT NOT NULL,
    expires INTEGER NOT NULL,
    record  TEXT NOT NULL,
    PRIMARY KEY (owner, id)
  );
  `,
  // A mailbox's former groups (keystore/group-rotation.ts): kept so that a device paired
  // later can be keyed for old mail too; the current group stays in users.
  `
  CREATE TABLE user_groups (
    owner       TEXT NOT NULL REFERENCES users(address) ON DELETE CASCADE,
    group_id    TEXT NOT NULL,
    certificate BLOB NOT NULL,
    retired     INTEGER NOT NULL,
    PRIMARY KEY (owner, group_id)
  );
  `,
  // A full rotation waiting for the devices (keystore/rekey.ts): the pending group and
  // each device's blinded-issue request for it.
  `
  CREATE TABLE pending_rotations (
    owner  TEXT PRIMARY KEY REFERENCES users(address) ON DELETE CASCADE,
    record TEXT NOT NULL
  );
  CREATE TABLE rekey_requests (
    owner  TEXT NOT NULL,
    device TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (owner, device),
    FOREIGN KEY (owner, device) REFERENCES devices(owner, id) ON DELETE CASCADE
  );
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

export function migrate(db: Database.Database): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
  db.transaction(() => {
    const row = db.prepare('SELECT version FROM schema_version').get() as
      { version: number } | undefined;
    const current = row?.version ?? 0;
    if (current > MIGRATIONS.length) {
      throw new Error(
        `key store schema version ${current} is newer than this gateway (${MIGRATIONS.length})`,
      );
    }
    for (let v = current; v < MIGRATIONS.length; v++) db.exec(MIGRATIONS[v]!);
    if (row === undefined)
      db.prepare('INSERT INTO schema_version (version) VALUES (?)').run(MIGRATIONS.length);
    else db.prepare('UPDATE schema_version SET version = ?').run(MIGRATIONS.length);
  }).immediate();
}
