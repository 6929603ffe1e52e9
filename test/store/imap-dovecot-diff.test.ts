import { afterAll, beforeAll, describe, it } from 'vitest';
import { startDovecot, type Dovecot } from '../helpers/dovecot.js';
import { runDifferential } from '../helpers/imap-diff-run.js';
import { openSession, type Session } from '../helpers/imap-diff-session.js';
import { plain, startStoreServer, type StoreServer } from '../helpers/store-imap.js';

/**
 * Differential test: the same random command sequences from three concurrent sessions
 * go to the embedded store and to Debian's Dovecot (the oracle), one command at a time
 * in the same interleaving; what is compared and how: test/helpers/imap-diff-run.ts.
 */

// more seeds to explore: STORE_DIFF_SEEDS=4,5,6 npx vitest run test/store/imap-dovecot-diff.test.ts
const SEEDS = (process.env.STORE_DIFF_SEEDS ?? '1,2,3').split(',').map(Number);
const SESSIONS = 3;
const STEPS = 200;

describe('embedded store vs Dovecot: random concurrent sessions', () => {
  let dovecot: Dovecot;
  let store: StoreServer;
  const opened: Session[] = [];

  beforeAll(async () => {
    // Both on tmpfs where there is room: the random commands' many fsynced writes, on a
    // disk other tests keep busy, were most of the time. What is compared is the replies.
    dovecot = await startDovecot({ inMemory: true });
    store = await startStoreServer(
      SEEDS.map((seed) => `diff${seed}`),
      {},
      { inMemory: true },
    );
  }, 60_000);

  afterAll(async () => {
    for (const s of opened) s.wire.close();
    await store?.stop();
    await dovecot?.remove();
  });

  it.each(SEEDS)(
    'seed %i: same replies and same mailbox views',
    async (seed) => {
      const user = `diff${seed}`;
      const dovecotAuth = Buffer.from(
        `${user}\u0000${dovecot.masterUser}\u0000${dovecot.masterPassword}`,
      ).toString('base64');
      const pairs: Array<[Session, Session]> = [];
      for (let i = 0; i < SESSIONS; i++) {
        const ref = await openSession(dovecot.imapPort, `dovecot#${i}`, dovecotAuth);
        const ours = await openSession(store.server.port, `ours#${i}`, plain(user));
        opened.push(ref, ours);
        pairs.push([ref, ours]);
      }
      // the CONDSTORE observers (RFC 7162): EXAMINE takes no \Recent from the others
      const watchers = [
        await openSession(dovecot.imapPort, 'dovecot#modseq', dovecotAuth),
        await openSession(store.server.port, 'ours#modseq', plain(user)),
      ] as const;
      opened.push(...watchers);
      await runDifferential({ seed, steps: STEPS, pairs, watchers });
    },
    120_000,
  );
});
