import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MailStore, MessageRecord } from '../../src/store/backend.js';
import { createMaildirStore } from '../../src/store/maildir/index.js';
import { startDovecot, type Dovecot } from '../helpers/dovecot.js';

/**
 * "Laid out so that Dovecot can later be pointed at the same directories": a real
 * Dovecot (Debian's imapd) is pointed at a Maildir this store wrote, and must see the
 * same UIDVALIDITY, UIDs, flags, keywords, folders and subscriptions; what Dovecot then
 * changes (an APPEND, a flag) must show up in this store after reopening.
 */

const USER = 'carol@example.com';
let dovecot: Dovecot;
let store: MailStore | undefined;

beforeAll(async () => {
  dovecot = await startDovecot();
});

afterAll(async () => {
  await store?.close();
  await dovecot?.remove();
});

function message(subject: string): Buffer {
  return Buffer.from(
    `From: a@example.net\r\nTo: ${USER}\r\nSubject: ${subject}\r\n\r\nbody of ${subject}\r\n`,
  );
}

async function imap(fn: (client: ImapFlow) => Promise<void>): Promise<void> {
  const client = new ImapFlow({
    host: '127.0.0.1',
    port: dovecot.imapPort,
    secure: false,
    logger: false,
    auth: {
      user: dovecot.masterUser,
      pass: dovecot.masterPassword,
      authzid: USER,
      loginMethod: 'AUTH=PLAIN',
    },
  });
  await client.connect();
  try {
    await fn(client);
  } finally {
    await client.logout();
  }
}

const sortFlags = (flags: Iterable<string>): string[] => [...flags].sort();

describe('Dovecot reads and writes the same Maildir', () => {
  it('sees our UIDs, UIDVALIDITY, flags, keywords, folders and subscriptions; we see its changes', async () => {
    store = await createMaildirStore({ root: dovecot.mailDir });
    await store.createUser(USER);
    const user = await store.openUser(USER);
    for (const s of ['one', 'two', 'three', 'four']) await store.deliver(USER, message(s));
    const box = await user.openMailbox('INBOX', { readOnly: false });
    await box.setFlags([1], 'add', ['\\Seen', 'Work']);
    await box.setFlags([2], 'add', ['\\Flagged', '$Later']);
    await box.setFlags([3], 'add', ['\\Deleted']);
    await box.expunge();
    const ours: MessageRecord[] = box.records();
    const uidValidity = box.uidValidity;
    await box.close();
    await user.createMailbox('Projekte/Entwürfe');
    await user.append('Projekte/Entwürfe', message('draft'));
    await user.setSubscribed('Junk', false);
    await store.close();
    store = undefined;
    // Dovecot's mail processes run as vmail
    execFileSync('chown', ['-R', 'vmail:vmail', join(dovecot.mailDir, USER)]);

    await imap(async (client) => {
      const list = await client.list();
      const byName = new Map(list.map((m) => [m.path.split(m.delimiter).join('/'), m]));
      expect([...byName.keys()].sort()).toEqual([
        'Archive',
        'Drafts',
        'INBOX',
        'Junk',
        'Projekte',
        'Projekte/Entwürfe',
        'Sent',
        'Trash',
      ]);
      // the parent exists only as a hierarchy level, as in our own listing
      expect(
        byName.get('Projekte')?.flags.has('\\Noselect') ||
          byName.get('Projekte')?.flags.has('\\NonExistent'),
      ).toBe(true);
      // imapflow sets `subscribed` only on mailboxes LSUB returned
      expect(byName.get('Junk')?.subscribed ?? false).toBe(false);
      expect(byName.get('Sent')?.subscribed).toBe(true);

      const mailbox = await client.mailboxOpen('INBOX');
      expect(Number(mailbox.uidValidity)).toBe(uidValidity);
      expect(mailbox.uidNext).toBe(5);
      const theirs: Array<{ uid: number; flags: string[]; size: number }> = [];
      for await (const m of client.fetch('1:*', { uid: true, flags: true, size: true })) {
        theirs.push({ uid: m.uid, flags: sortFlags(m.flags ?? []), size: m.size ?? -1 });
      }
      expect(theirs).toEqual(
        ours.map((r) => ({ uid: r.uid, flags: sortFlags(r.flags), size: r.size })),
      );

      const drafts = await client.mailboxOpen(
        list.find((m) => m.path.includes('Entw'))?.path as string,
      );
      expect(drafts.exists).toBe(1);

      // now Dovecot changes things: a flag on UID 1 and a new message
      await client.mailboxOpen('INBOX');
      await client.messageFlagsAdd('1', ['\\Answered'], { uid: true });
      await client.append('INBOX', message('from dovecot'), ['\\Seen']);
    });

    store = await createMaildirStore({ root: dovecot.mailDir });
    const again = await (await store.openUser(USER)).openMailbox('INBOX', { readOnly: true });
    expect(again.uidValidity).toBe(uidValidity);
    expect(again.records().map((r) => r.uid)).toEqual([1, 2, 4, 5]);
    expect(sortFlags(again.records()[0]?.flags ?? [])).toEqual(['Work', '\\Answered', '\\Seen']);
    expect(again.records()[3]?.flags).toEqual(['\\Seen']);
    expect(Buffer.from(await again.read(5)).toString()).toContain('Subject: from dovecot');
    expect((await again.structure(5)).envelope.subject).toBe('from dovecot');
    await again.close();
  });
});
