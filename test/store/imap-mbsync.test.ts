import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBinary } from '../helpers/binaries.js';
import { MASTER, startStoreServer, type StoreServer } from '../helpers/store-imap.js';
import { sampleMessages } from '../helpers/store-messages.js';
import { makeServerCert } from '../helpers/store-tls.js';
import { tempDir } from '../helpers/tmp.js';

const run = promisify(execFile);

/**
 * mbsync (isync) syncing a mailbox both ways over STARTTLS. mbsync has no setting for a
 * SASL authzid (its cyrus-sasl callbacks answer the same `User` for authcid and authzid,
 * and PLAIN then sends none), so it cannot use the master login: this server runs with
 * `allowUserLogin`, where a user's own PLAIN login is accepted with the master password.
 */
describe('mbsync (isync) against the embedded store', () => {
  let s: StoreServer;
  const dir = tempDir('store-imap-mbsync-');
  const local = join(dir.path, 'local');
  const config = join(dir.path, 'mbsyncrc');
  const messages = sampleMessages();

  const sync = async (): Promise<string> => {
    const { stdout, stderr } = await run(requireBinary('mbsync'), ['-c', config, '-a'], {
      timeout: 60_000,
      env: { ...process.env, HOME: dir.path },
    });
    return stdout + stderr;
  };
  const localFiles = (box: string): string[] =>
    ['cur', 'new'].flatMap((d) =>
      readdirSync(join(local, box, d)).map((f) => join(local, box, d, f)),
    );

  beforeAll(async () => {
    const tls = makeServerCert(dir.path);
    s = await startStoreServer(['alice'], {
      tls: { key: tls.key, cert: tls.cert },
      allowUserLogin: true,
    });
    for (const m of messages) await s.store.deliver('alice', m);
    mkdirSync(local, { recursive: true });
    writeFileSync(
      config,
      [
        'IMAPAccount store',
        'Host localhost',
        `Port ${s.server.port}`,
        'User alice',
        `Pass ${MASTER.password}`,
        'AuthMechs PLAIN',
        'SSLType STARTTLS',
        `CertificateFile ${tls.certPath}`,
        '',
        'IMAPStore remote',
        'Account store',
        '',
        'MaildirStore local',
        `Path ${local}/`,
        `Inbox ${local}/INBOX`,
        'SubFolders Verbatim',
        '',
        'Channel sync',
        'Far :remote:',
        'Near :local:',
        'Patterns INBOX Archive',
        'Create Both',
        'Expunge Both',
        'Sync All',
        'SyncState *',
        '',
      ].join('\n'),
    );
  });

  afterAll(async () => {
    await s?.stop();
    dir.remove();
  });

  it('pulls every message, then pushes a new local message and a flag change back', async () => {
    await sync();
    expect(localFiles('INBOX').length).toBe(messages.length);

    // a new message written into the local Maildir, and the first local message marked flagged+seen
    writeFileSync(
      join(local, 'INBOX', 'new', '1700000000.local1.host'),
      'From: me@example.com\r\nSubject: written locally\r\n\r\nlocal body\r\n',
    );
    const first = localFiles('INBOX').sort()[0] as string;
    renameSync(first, `${first.replace(/:2,[A-Z]*$/, '')}:2,FS`.replace('/new/', '/cur/'));
    await sync();

    const alice = await s.store.openUser('alice');
    const inbox = await alice.openMailbox('INBOX', { readOnly: true });
    try {
      const records = inbox.records();
      expect(records.length).toBe(messages.length + 1);
      expect(
        records.filter((r) => r.flags.includes('\\Flagged') && r.flags.includes('\\Seen')).length,
      ).toBe(1);
      const subjects = await Promise.all(
        records.map(async (r) => (await inbox.structure(r.uid)).envelope.subject),
      );
      expect(subjects).toContain('written locally');
    } finally {
      await inbox.close();
    }
  });

  it('propagates a server-side expunge and a server-side append to the local Maildir', async () => {
    const alice = await s.store.openUser('alice');
    const inbox = await alice.openMailbox('INBOX', { readOnly: false });
    try {
      const victim = inbox.records()[0]?.uid as number;
      await inbox.setFlags([victim], 'add', ['\\Deleted']);
      expect(await inbox.expunge()).toEqual([victim]);
    } finally {
      await inbox.close();
    }
    await alice.append('Archive', messages[2] as Buffer);
    await sync();
    expect(localFiles('INBOX').length).toBe(messages.length);
    expect(localFiles('Archive').length).toBe(1);
  });
});
