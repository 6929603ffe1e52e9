import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBinary } from '../helpers/binaries.js';
import { startProxyHarness, type ProxyHarness } from '../helpers/proxy-harness.js';
import { mailText, threadMails } from '../helpers/store-extensions.js';
import { STORE_IMAP_FIXTURES } from '../helpers/store-messages.js';

const run = promisify(execFile);

/**
 * The new store extensions reach a client through the recrypting proxy unharmed: the
 * proxy's allow-list passes ESEARCH, SORT, THREAD, LIST-EXTENDED, LIST-STATUS and
 * MULTIAPPEND, and its response scanner relays `* ESEARCH`, `* SORT`, `* THREAD`,
 * `* LIST … ("CHILDINFO" …)` and `* STATUS` lines as they are. Python's imaplib and
 * imapflow are the clients.
 */
describe('store extensions through the proxy (embedded upstream)', () => {
  let h: ProxyHarness;

  beforeAll(async () => {
    h = await startProxyHarness({}, 1, 'embedded');
    // delivery keeps arrival order; the subjects and references make a thread
    for (const m of threadMails().slice(0, 5)) await h.deliver(Buffer.from(mailText(m)));
  });

  afterAll(async () => {
    await h?.stop();
  });

  it('imaplib: ESEARCH, SORT, UID SORT, THREAD and LIST-STATUS answers arrive unchanged', async () => {
    const python = requireBinary('python3');
    const { stdout } = await run(python, [
      join(STORE_IMAP_FIXTURES, 'imaplib-extensions.py'),
      '127.0.0.1',
      String(h.proxy.ports.tls),
      h.user.address,
      h.user.devices[0]!.password,
    ]);
    const out = JSON.parse(stdout) as Record<string, string[]>;
    for (const cap of ['ESEARCH', 'SORT', 'THREAD=REFERENCES', 'LIST-STATUS', 'MULTIAPPEND'])
      expect(out.capabilities).toContain(cap);
    expect(out.esearch).toEqual([expect.stringMatching(/^\(TAG "\w+"\) MIN 1 MAX 5 COUNT 5$/)]);
    expect(out.sort).toEqual(['5 4 3 2 1']);
    // Budget (4 5), Lunch (1 2 3); ties by UID
    expect(out.uid_sort).toEqual(['4 5 1 2 3']);
    // 2 → 1 → 3 by References; 4 and 5 under one missing parent
    expect(out.thread).toEqual(['(2 1 3)((4)(5))']);
    expect(out.list).toContain('(\\HasNoChildren) "/" INBOX');
    expect(out.status).toContain('INBOX (MESSAGES 5)');
    expect(out.status).toContain('Sent (MESSAGES 0)');
  });

  it('imapflow: LIST-STATUS', async () => {
    const client = new ImapFlow({
      host: '127.0.0.1',
      port: h.proxy.ports.tls!,
      secure: true,
      tls: { rejectUnauthorized: false },
      auth: { user: h.user.address, pass: h.user.devices[0]!.password },
      logger: false,
    });
    await client.connect();
    try {
      const boxes = await client.list({ statusQuery: { messages: true, unseen: true } });
      const inbox = boxes.find((b) => b.path === 'INBOX');
      expect(inbox?.status).toMatchObject({ messages: 5, unseen: 5 });
      expect(boxes.find((b) => b.path === 'Drafts')?.status).toMatchObject({ messages: 0 });
    } finally {
      await client.logout();
    }
  });
});
