import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MailStore } from '../../src/store/backend.js';
import { startImapServer, type ImapServerHandle } from '../../src/store/imap/index.js';
import { createMaildirStore } from '../../src/store/maildir/index.js';
import { appendAll, esearchMails, untagged } from '../helpers/store-extensions.js';
import { MASTER, plain, Wire } from '../helpers/store-imap.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * CONDSTORE and QRESYNC (RFC 7162) on the embedded store over a real socket, following
 * the RFC's examples (mod-sequence numbers are the store's own, so each expectation is
 * written relative to the HIGHESTMODSEQ the server announced), and mod-sequences kept
 * across a restart of the store on the same Maildir tree.
 */

const highest = (reply: string): number => {
  const m = /\[HIGHESTMODSEQ (\d+)\]/.exec(reply);
  if (m === null) throw new Error(`no HIGHESTMODSEQ in ${reply}`);
  return Number(m[1]);
};

describe('CONDSTORE and QRESYNC (RFC 7162)', () => {
  const dir = tempDir('store-condstore-');
  let store: MailStore;
  let server: ImapServerHandle;
  const wires: Wire[] = [];

  async function start(): Promise<void> {
    store = await createMaildirStore({ root: dir.path });
    if (!(await store.userExists('alice'))) await store.createUser('alice');
    server = await startImapServer({ store, master: MASTER });
  }
  async function stop(): Promise<void> {
    for (const w of wires.splice(0)) w.close();
    await server.close();
    await store.close();
  }
  async function login(): Promise<Wire> {
    const w = await Wire.open(server.port);
    wires.push(w);
    expect(await w.command('l', `AUTHENTICATE PLAIN ${plain('alice')}`)).toMatch(/^l OK/m);
    return w;
  }

  beforeAll(async () => {
    await start();
    const w = await login();
    await appendAll(w, 'INBOX', esearchMails().slice(0, 6));
  });
  afterAll(async () => {
    await stop();
    dir.remove();
  });

  it('advertises CONDSTORE and QRESYNC; ENABLE lists what it newly enabled', async () => {
    const w = await login();
    const caps = untagged(await w.command('c', 'CAPABILITY'))[0]?.split(' ') ?? [];
    expect(caps).toContain('CONDSTORE');
    expect(caps).toContain('QRESYNC');
    expect(untagged(await w.command('e', 'ENABLE QRESYNC CONDSTORE X-NONE'))).toEqual([
      '* ENABLED QRESYNC CONDSTORE',
    ]);
    expect(untagged(await w.command('f', 'ENABLE CONDSTORE'))).toEqual(['* ENABLED']);
  });

  it('announces HIGHESTMODSEQ only once CONDSTORE is enabled (§3.1.8, §3.1.2)', async () => {
    const w = await login();
    expect(await w.command('a', 'SELECT INBOX')).not.toMatch(/HIGHESTMODSEQ/);
    // a CONDSTORE-enabling command on a selected mailbox announces it (§3.1)
    const reply = await w.command('b', 'FETCH 1 (MODSEQ)');
    expect(reply).toMatch(/^\* OK \[HIGHESTMODSEQ \d+\]/m);
    expect(reply).toMatch(/^\* 1 FETCH \(MODSEQ \(\d+\)\)/m);
    const sel = await w.command('c', 'EXAMINE INBOX (CONDSTORE)');
    expect(sel).toMatch(/^c OK \[READ-ONLY\]/m);
    expect(highest(sel)).toBeGreaterThan(0);
  });

  it('STORE raises MODSEQ, FETCH (CHANGEDSINCE) returns just that message (§3.1.4)', async () => {
    const w = await login();
    const h = highest(await w.command('a', 'SELECT INBOX (CONDSTORE)'));
    expect(untagged(await w.command('b', 'FETCH 1:* (FLAGS) (CHANGEDSINCE ' + h + ')'))).toEqual(
      [],
    );
    const store = await w.command('c', 'STORE 2 +FLAGS (\\Flagged $Important)');
    expect(store).toMatch(
      new RegExp(
        `^\\* 2 FETCH \\(UID 2 FLAGS \\([^)]*\\$Important[^)]*\\) MODSEQ \\(${h + 1}\\)\\)`,
        'm',
      ),
    );
    expect(untagged(await w.command('d', `FETCH 1:* (FLAGS) (CHANGEDSINCE ${h})`))).toEqual([
      expect.stringMatching(new RegExp(`^\\* 2 FETCH \\(FLAGS \\(.*\\) MODSEQ \\(${h + 1}\\)\\)$`)),
    ]);
    // a STORE that changes nothing keeps the mod-sequence (§3.1.3)
    expect(await w.command('e', 'STORE 2 +FLAGS (\\Flagged)')).toMatch(
      new RegExp(`MODSEQ \\(${h + 1}\\)`),
    );
    expect(
      highest(
        await w
          .command('f', 'STATUS INBOX (HIGHESTMODSEQ)')
          .then((r) => r.replace(/HIGHESTMODSEQ (\d+)\)/, '[HIGHESTMODSEQ $1]')),
      ),
    ).toBe(h + 1);
  });

  it('STORE (UNCHANGEDSINCE) fails for messages changed since, OK [MODIFIED] (§3.1.3 examples)', async () => {
    const w = await login();
    const h = highest(await w.command('a', 'SELECT INBOX (CONDSTORE)'));
    // message 3 is changed after the client read h
    await w.command('b', 'STORE 3 +FLAGS.SILENT (\\Answered)');
    const reply = await w.command(
      'c',
      `STORE 1,3,4 (UNCHANGEDSINCE ${h}) +FLAGS.SILENT (\\Deleted)`,
    );
    // .SILENT still reports the new mod-sequence of each changed message (RFC 7162 §3.1.3)
    expect(untagged(reply)).toEqual([
      `* 1 FETCH (UID 1 MODSEQ (${h + 2}))`,
      `* 4 FETCH (UID 4 MODSEQ (${h + 2}))`,
    ]);
    expect(reply).toMatch(/^c OK \[MODIFIED 3\] /m);
    // UID STORE names UIDs; UNCHANGEDSINCE 0 always fails (§3.1.3)
    expect(await w.command('d', 'UID STORE 5:6 (UNCHANGEDSINCE 0) -FLAGS (\\Seen)')).toMatch(
      /^d OK \[MODIFIED 5:6\] /m,
    );
    await w.command('e', 'STORE 1,4 -FLAGS.SILENT (\\Deleted)');
  });

  it('SEARCH MODSEQ answers the highest mod-sequence of the matches (§3.1.5)', async () => {
    const w = await login();
    const h = highest(await w.command('a', 'SELECT INBOX (CONDSTORE)'));
    await w.command('b', 'STORE 6 +FLAGS.SILENT (\\Seen)');
    expect(untagged(await w.command('c', `SEARCH MODSEQ ${h + 1}`))).toEqual([
      `* SEARCH 6 (MODSEQ ${h + 1})`,
    ]);
    expect(
      untagged(await w.command('d', `UID SEARCH MODSEQ "/flags/\\\\draft" all ${h + 1}`)),
    ).toEqual([`* SEARCH 6 (MODSEQ ${h + 1})`]);
    expect(untagged(await w.command('e', `SEARCH RETURN (ALL) MODSEQ ${h + 1}`))).toEqual([
      `* ESEARCH (TAG "e") ALL 6 MODSEQ ${h + 1}`,
    ]);
    expect(untagged(await w.command('f', `SEARCH MODSEQ ${h + 2}`))).toEqual(['* SEARCH']);
  });

  it("reports another session's flag change with UID and MODSEQ (§3.1)", async () => {
    const a = await login();
    const b = await login();
    await a.command('e', 'ENABLE CONDSTORE');
    const h = highest(await a.command('a', 'SELECT INBOX'));
    await b.command('b', 'SELECT INBOX');
    await b.command('c', 'STORE 1 +FLAGS (\\Draft)');
    expect(await a.command('n', 'NOOP')).toMatch(
      new RegExp(
        `^\\* 1 FETCH \\(UID 1 FLAGS \\([^)]*\\\\Draft[^)]*\\) MODSEQ \\(${h + 1}\\)\\)`,
        'm',
      ),
    );
  });

  it('QRESYNC: VANISHED for expunges, SELECT (QRESYNC …) and UID FETCH (CHANGEDSINCE VANISHED)', async () => {
    const a = await login();
    expect(await a.command('e', 'ENABLE QRESYNC')).toMatch(/^\* ENABLED QRESYNC\r\n/m);
    const sel = await a.command('a', 'SELECT INBOX');
    const uidValidity = Number(/UIDVALIDITY (\d+)/.exec(sel)?.[1]);
    const h = highest(sel);
    // an APPEND and an expunge in another session, a flag change
    const b = await login();
    await appendAll(b, 'INBOX', esearchMails().slice(6, 7));
    await b.command('s', 'SELECT INBOX');
    await b.command('t', 'STORE 2 +FLAGS.SILENT (\\Deleted)');
    await b.command('x', 'EXPUNGE');
    await b.command('u', 'UID STORE 3 -FLAGS.SILENT (\\Answered)');
    const noop = await a.command('n', 'NOOP');
    expect(noop).toMatch(/^\* VANISHED 2\r\n/m);
    expect(noop).not.toMatch(/EXPUNGE/);
    // this session's own expunge is a VANISHED too (§3.2.10)
    await a.command('d', 'STORE 4 +FLAGS.SILENT (\\Deleted)'); // seq 4 is UID 5 now
    expect(untagged(await a.command('x', 'EXPUNGE'))).toEqual(['* VANISHED 5']);

    const c = await login();
    await c.command('e', 'ENABLE QRESYNC');
    const re = await c.command('s', `SELECT INBOX (QRESYNC (${uidValidity} ${h} 1:7))`);
    expect(re).toMatch(/^\* VANISHED \(EARLIER\) 2,5\r\n/m);
    expect(re).toMatch(/^\* 2 FETCH \(UID 3 FLAGS \([^)]*\) MODSEQ \(\d+\)\)\r\n/m);
    expect(re).toMatch(/^\* 5 FETCH \(UID 7 FLAGS /m);
    expect(re).not.toMatch(/UID (1|4|6) /);
    expect(await c.command('f', `UID FETCH 1:* (FLAGS) (CHANGEDSINCE ${h} VANISHED)`)).toMatch(
      /^\* VANISHED \(EARLIER\) 2,5\r\n\* 2 FETCH \(UID 3 FLAGS .*\r\n\* 5 FETCH \(UID 7 /m,
    );
    // a UIDVALIDITY that does not match: a plain SELECT (§3.2.5)
    expect(
      untagged(await c.command('t', `SELECT INBOX (QRESYNC (${uidValidity + 1} ${h}))`)).join('\n'),
    ).not.toMatch(/VANISHED|FETCH/);
    expect(await c.command('g', 'SELECT INBOX (QRESYNC (1 1))')).toMatch(/^\* OK \[CLOSED\]/m);
    // VANISHED only with UID FETCH; QRESYNC only once enabled
    expect(await c.command('h', 'FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)')).toMatch(/^h BAD/m);
    const d = await login();
    expect(await d.command('i', 'SELECT INBOX (QRESYNC (1 1))')).toMatch(/^i BAD/m);
  });

  it('keeps mod-sequences across a restart: never lower, the expunged still VANISHED', async () => {
    const a = await login();
    await a.command('e', 'ENABLE QRESYNC');
    const sel = await a.command('a', 'SELECT INBOX');
    const uidValidity = Number(/UIDVALIDITY (\d+)/.exec(sel)?.[1]);
    const before = highest(sel);
    await stop();
    await start();
    const b = await login();
    await b.command('e', 'ENABLE QRESYNC');
    const after = highest(await b.command('a', 'SELECT INBOX'));
    expect(after).toBeGreaterThan(before);
    // every message counts as changed since the old HIGHESTMODSEQ; UIDs 2 and 5 are gone
    const c = await login();
    await c.command('e', 'ENABLE QRESYNC');
    const re = await c.command('s', `SELECT INBOX (QRESYNC (${uidValidity} ${before} 1:7))`);
    expect(re.match(/^\* \d+ FETCH /gm)).toHaveLength(5);
    expect(re).toMatch(/^\* VANISHED \(EARLIER\) 2,5\r\n/m);
    expect(untagged(await c.command('f', `FETCH 1:* (FLAGS) (CHANGEDSINCE ${after})`))).toEqual([]);
    await c.command('g', 'STORE 1 +FLAGS.SILENT ($Restarted)');
    expect(highest(await c.command('h', 'SELECT INBOX'))).toBe(after + 1);
  });
});
