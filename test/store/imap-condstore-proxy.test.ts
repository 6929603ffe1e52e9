import { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProxyHarness, type ProxyHarness } from '../helpers/proxy-harness.js';
import { mailText, threadMails } from '../helpers/store-extensions.js';

/**
 * CONDSTORE and QRESYNC (RFC 7162) through the recrypting proxy to the embedded store,
 * with imapflow, which uses both when offered (`qresync: true`): the proxy's allow-list
 * passes them, and its FETCH scanner relays `MODSEQ (n)` and `* VANISHED` while still
 * decrypting the bodies next to them.
 */
describe('CONDSTORE / QRESYNC through the proxy (embedded upstream)', () => {
  let h: ProxyHarness;

  beforeAll(async () => {
    h = await startProxyHarness({}, 1, 'embedded');
    for (const m of threadMails().slice(0, 4)) await h.deliver(Buffer.from(mailText(m)));
  });

  afterAll(async () => {
    await h?.stop();
  });

  const client = (): ImapFlow =>
    new ImapFlow({
      host: '127.0.0.1',
      port: h.proxy.ports.tls!,
      secure: true,
      tls: { rejectUnauthorized: false },
      auth: { user: h.user.address, pass: h.user.devices[0]!.password },
      logger: false,
      qresync: true,
    });

  it('imapflow: HIGHESTMODSEQ, FETCH (CHANGEDSINCE) with bodies, VANISHED', async () => {
    const a = client();
    const b = client();
    await a.connect();
    await b.connect();
    try {
      expect(a.capabilities.has('CONDSTORE')).toBe(true);
      expect(a.capabilities.has('QRESYNC')).toBe(true);
      const box = await a.mailboxOpen('INBOX');
      const start = BigInt(box.highestModseq ?? 0);
      expect(start).toBeGreaterThan(0n);

      await a.messageFlagsAdd('2', ['\\Flagged'], { uid: true });
      const changed = [];
      for await (const m of a.fetch(
        '1:*',
        { uid: true, flags: true, source: true },
        { uid: true, changedSince: start },
      ))
        changed.push(m);
      expect(changed.map((m) => m.uid)).toEqual([2]);
      expect(BigInt(changed[0]!.modseq ?? 0)).toBeGreaterThan(start);
      expect(changed[0]!.flags?.has('\\Flagged')).toBe(true);
      // the body came through the rewriter decrypted, next to MODSEQ in the same FETCH
      expect(changed[0]!.source?.toString('utf8')).toContain(threadMails()[1]!.subject);

      const vanished = new Promise<{ uid?: number; vanished?: boolean }>((resolve) =>
        a.on('expunge', resolve),
      );
      await b.mailboxOpen('INBOX');
      await b.messageDelete('3', { uid: true });
      await a.noop();
      expect(await vanished).toMatchObject({ uid: 3, vanished: true });
    } finally {
      await a.logout();
      await b.logout();
    }
  });
});
