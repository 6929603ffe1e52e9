import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type Dovecot } from '../helpers/dovecot.js';
import { appendAll, esearchMails, untagged } from '../helpers/store-extensions.js';
import { plain, startStoreServer, Wire, type StoreServer } from '../helpers/store-imap.js';

/**
 * Dovecot (Debian's imapd) as the oracle for CONDSTORE and QRESYNC (RFC 7162): the same
 * messages and the same commands, modelled on the RFC's examples, on both servers. Each
 * server numbers mod-sequences its own way, so every number in `MODSEQ (n)`,
 * `[HIGHESTMODSEQ n]`, `(MODSEQ n)` is written relative to that server's HIGHESTMODSEQ
 * at SELECT, and UIDVALIDITY is each server's own. Not compared: \Recent (its own
 * bookkeeping in Dovecot, src/store/imap/README.md) and UID in the FETCH a STORE by
 * sequence number answers (we add it once CONDSTORE is enabled, Dovecot only with
 * QRESYNC); the order of items in FETCH and STATUS is free (RFC 3501 §7.4.2, §7.2.4).
 */
const USER = 'carol@example.org';

interface Side {
  w: Wire;
  base: number;
  uidValidity: number;
}

let dovecot: Dovecot;
let store: StoreServer;
let ours: Side;
let theirs: Side;

async function login(port: number, authcid: string, password: string): Promise<Wire> {
  const w = await Wire.open(port);
  const reply = await w.command('l', `AUTHENTICATE PLAIN ${plain(USER, authcid, password)}`);
  if (!/^l OK/m.test(reply)) throw new Error(reply);
  return w;
}

/** Mod-sequences relative to the side's base; item order inside FETCH is free (RFC 3501 §7.4.2). */
function normalise(side: Side, lines: string[], command: string): string[] {
  const rel = (n: string): string =>
    `b${Number(n) - side.base >= 0 ? '+' : ''}${Number(n) - side.base}`;
  return lines
    .map((l) =>
      l
        .replace(
          /(MODSEQ \(|HIGHESTMODSEQ |MODSEQ )(\d+)/g,
          (_m, p: string, n: string) => p + rel(n),
        )
        .replace(/UIDVALIDITY \d+/, 'UIDVALIDITY v')
        .replace(/ ?\\Recent|\\Recent ?/g, '')
        .replace(/FLAGS \(([^)]*)\)/, (_m, f: string) => `FLAGS (${f.split(' ').sort().join(' ')})`)
        .replace(
          /^(\* \d+ FETCH \(|\* STATUS \S+ \()(.*)\)$/,
          (_m, head: string, items: string) => {
            const parts = items.match(/[A-Z.]+ (\([^)]*\)|\S+)/g) ?? [];
            return `${head}${parts
              .filter((p) => !/^UID /.test(p) || !command.startsWith('STORE'))
              .sort()
              .join(' ')})`;
          },
        )
        .replace(/\] .*$/, ']'),
    )
    .filter((l) => !/^\* \d+ RECENT$/.test(l));
}

/** `line` (with `{uidvalidity}` and `{base+k}` filled per side) on both; [ours, Dovecot's] normalised. */
async function both(
  line: string,
  side: 'all' | 'untagged' = 'untagged',
): Promise<[string[], string[]]> {
  const out: string[][] = [];
  for (const s of [ours, theirs]) {
    const text = line
      .replace('{uidvalidity}', String(s.uidValidity))
      .replace(/\{base\+(\d+)\}/g, (_m, k: string) => String(s.base + Number(k)));
    const reply = await s.w.command('c', text);
    const lines = side === 'all' ? reply.trim().split('\r\n') : untagged(reply);
    const status = (l: string): string =>
      l.replace(/^(c (OK|NO|BAD)( \[[^\]]*\])?).*$/, '$1').replace(' [CLIENTBUG]', '');
    out.push(normalise(s, lines.map(status), text));
  }
  return [out[0] as string[], out[1] as string[]];
}

beforeAll(async () => {
  dovecot = await startDovecot();
  store = await startStoreServer([USER]);
  const wires = [
    await login(store.server.port, 'gateway', 'master-secret-for-tests'),
    await login(dovecot.imapPort, dovecot.masterUser, dovecot.masterPassword),
  ];
  const sides: Side[] = [];
  for (const w of wires) {
    await appendAll(w, 'INBOX', esearchMails().slice(0, 6));
    await w.command('s0', 'SELECT INBOX (CONDSTORE)');
    // one change to every message, so both servers start from equal mod-sequences
    await w.command('s1', 'STORE 1:* +FLAGS.SILENT ($Start)');
    const sel = await w.command('s', 'SELECT INBOX (CONDSTORE)');
    sides.push({
      w,
      base: Number(/HIGHESTMODSEQ (\d+)/.exec(sel)?.[1]),
      uidValidity: Number(/UIDVALIDITY (\d+)/.exec(sel)?.[1]),
    });
  }
  [ours, theirs] = sides as [Side, Side];
}, 60_000);

afterAll(async () => {
  ours?.w.close();
  theirs?.w.close();
  await store?.stop();
  await dovecot?.remove();
});

describe('CONDSTORE / QRESYNC: the embedded store answers as Dovecot does', () => {
  it.each([
    // §3.1.4: nothing changed since HIGHESTMODSEQ
    'FETCH 1:* (FLAGS) (CHANGEDSINCE {base+0})',
    'STORE 2 +FLAGS (\\Draft)',
    'UID FETCH 1:* (FLAGS) (CHANGEDSINCE {base+0})',
    'FETCH 2 (MODSEQ)',
    'STORE 3 +FLAGS.SILENT (\\Answered)',
    // §3.1.3: conditional STORE, one message changed meanwhile
    'STORE 1,3,4 (UNCHANGEDSINCE {base+1}) +FLAGS.SILENT (\\Deleted)',
    'UID STORE 5:6 (UNCHANGEDSINCE 0) -FLAGS (\\Seen)',
    'STORE 5 (UNCHANGEDSINCE {base+3}) +FLAGS ($Junk)',
    // §3.1.5
    'SEARCH MODSEQ {base+2}',
    'UID SEARCH MODSEQ "/flags/\\\\draft" all {base+1}',
    'SEARCH RETURN (ALL COUNT) MODSEQ {base+1}',
    'SEARCH MODSEQ {base+99}',
    // §3.1.5 for SORT (sort-data ends with the highest MODSEQ); THREAD's reply has none
    'SORT (SUBJECT) UTF-8 MODSEQ {base+2}',
    'UID SORT (REVERSE ARRIVAL) UTF-8 OR MODSEQ {base+3} DRAFT',
    'SORT (DATE) UTF-8 MODSEQ {base+99}',
    'SORT (SIZE) UTF-8 NOT MODSEQ {base+2}',
    'THREAD ORDEREDSUBJECT UTF-8 MODSEQ {base+1}',
    'UID THREAD REFERENCES UTF-8 MODSEQ {base+2}',
    'STATUS INBOX (HIGHESTMODSEQ MESSAGES)',
    'FETCH 1:* (UID FLAGS MODSEQ) (CHANGEDSINCE {base+2})',
  ])('%s', async (line) => {
    const [a, b] = await both(line, 'all');
    expect(a).toEqual(b);
  });

  it('SORT and THREAD with a MODSEQ key enable CONDSTORE in a session that had not', async () => {
    const fresh: Side[] = [];
    for (const [s, port, user, password] of [
      [ours, store.server.port, 'gateway', 'master-secret-for-tests'],
      [theirs, dovecot.imapPort, dovecot.masterUser, dovecot.masterPassword],
    ] as const) {
      const w = await login(port, user, password);
      await w.command('s', 'SELECT INBOX');
      fresh.push({ ...s, w });
    }
    const saved = [ours, theirs] as const;
    [ours, theirs] = fresh as [Side, Side];
    try {
      for (const line of [
        'SORT (ARRIVAL) UTF-8 MODSEQ {base+2}',
        'THREAD ORDEREDSUBJECT UTF-8 MODSEQ {base+2}',
        'UID SORT (SUBJECT) UTF-8 MODSEQ {base+2}',
      ]) {
        const [a, b] = await both(line, 'all');
        expect(a).toEqual(b);
      }
    } finally {
      for (const s of fresh) s.w.close();
      [ours, theirs] = saved;
    }
  });

  it('QRESYNC: EXPUNGE as VANISHED, SELECT (QRESYNC …), UID FETCH (CHANGEDSINCE … VANISHED)', async () => {
    const [ea, eb] = await both('ENABLE QRESYNC', 'all');
    expect(ea).toEqual(eb);
    const [xa, xb] = await both('EXPUNGE', 'all');
    expect(xa).toEqual(xb);
    for (const line of [
      'SELECT INBOX (QRESYNC ({uidvalidity} {base+1} 1:6))',
      'SELECT INBOX (QRESYNC ({uidvalidity} {base+1}))',
      'UID FETCH 1:* (FLAGS) (CHANGEDSINCE {base+1} VANISHED)',
      'UID FETCH 3:6 (FLAGS) (CHANGEDSINCE {base+3} VANISHED)',
    ]) {
      const [a, b] = await both(line, 'all');
      expect(a.filter((l) => !/^\* (FLAGS|OK \[(PERMANENTFLAGS|UNSEEN))/.test(l))).toEqual(
        b.filter((l) => !/^\* (FLAGS|OK \[(PERMANENTFLAGS|UNSEEN))/.test(l)),
      );
    }
  });
});
