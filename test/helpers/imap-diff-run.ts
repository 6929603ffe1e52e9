/**
 * The differential IMAP test (the oracle is Debian's Dovecot): the same random command
 * sequences from several concurrent sessions go to the reference and to our server, one
 * command at a time in the same interleaving. After every command the tagged status must
 * agree, and so must SEARCH results and FETCH data; at checkpoints every session's model of
 * its mailbox (built only from the untagged EXISTS / EXPUNGE / FETCH it was sent) must equal
 * what a fresh FETCH shows, and the two servers' views must be equal. Compared: sequence
 * numbers, UIDs, flags; not \Recent (a documented difference, src/store/imap/README.md).
 * MODSEQ values are each server's own, so at every checkpoint a watcher session per server
 * EXAMINEs each mailbox with (CONDSTORE) and the UIDs of `FETCH 1:* (UID) (CHANGEDSINCE
 * <its HIGHESTMODSEQ at the previous checkpoint>)` must agree, and HIGHESTMODSEQ must not
 * have gone down. A failure names the seed and the last commands.
 *
 * Used by test/store/imap-dovecot-diff.test.ts (the embedded store) and
 * test/bridge/bridge-dovecot-diff.test.ts (the device bridge).
 */
import { expect } from 'vitest';
import { comparable, normFlags, prng, type Reply, type Session } from './imap-diff-session.js';

const FLAGS = ['\\Seen', '\\Flagged', '\\Deleted', '\\Answered', '\\Draft', 'kw1', '$Work'];
const SUBJECTS = ['hello', 'report 7', 'Re: hello', 'café', 'meeting'];
const DATES = [
  'Mon, 02 Mar 2026 23:30:00 -0500',
  'Tue, 03 Mar 2026 01:00:00 +0200',
  '4 Mar 2026 12:00:00 GMT',
];

export function messageText(r: () => number, k: number): string {
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const tag = r() < 0.5 ? `X-Tag: t${k % 3}\r\n` : '';
  const body = `word${k % 4} ${'line of text\r\n'.repeat(1 + Math.floor(r() * 5))}`;
  return `From: Sender ${k % 3} <s${k % 3}@example.org>\r\nTo: u@example.com\r\nSubject: ${pick(SUBJECTS)} ${k}\r\nDate: ${pick(DATES)}\r\n${tag}Content-Type: text/plain; charset=utf-8\r\n\r\n${body}`;
}

/** One random command, chosen from the reference (Dovecot) session's model. */
export function randomCommand(r: () => number, s: Session, k: number): string {
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const n = s.model.length;
  const seqSet = (): string => {
    const a = 1 + Math.floor(r() * n);
    // small sets (a `*` only near the end), so COPY does not double the mailbox
    const b = r() < 0.3 && a > n - 4 ? '*' : String(Math.min(n, a + Math.floor(r() * 3)));
    return r() < 0.5 ? String(a) : `${a}:${b}`;
  };
  const uids = s.model.map((e) => e.uid).filter((u): u is number => u !== null);
  const uidSet = (): string => {
    if (uids.length === 0 || r() < 0.2)
      return `${Math.max(1, (uids.at(-1) ?? 0) + Math.floor(r() * 6) - 3)}:*`;
    const a = pick(uids);
    return r() < 0.5 ? String(a) : `${a}:${a + Math.floor(r() * 4)}`;
  };
  const flags = (): string =>
    [...new Set(Array.from({ length: 1 + Math.floor(r() * 2) }, () => pick(FLAGS)))].join(' ');
  const roll = r();
  if (s.selected === '' || roll < 0.06)
    return pick(['SELECT INBOX', 'SELECT INBOX', 'EXAMINE INBOX', 'SELECT Other']);
  if (roll < 0.2) {
    const opts =
      (r() < 0.4 ? ` (${flags()})` : '') + (r() < 0.5 ? ' "01-Mar-2026 10:00:00 +0100"' : '');
    return `APPEND ${pick(['INBOX', 'INBOX', 'Other'])}${opts}\u0000${messageText(r, k)}`;
  }
  if (n === 0) return pick(['NOOP', 'IDLE', 'SEARCH ALL']);
  const uid = r() < 0.4;
  const set = uid ? uidSet() : seqSet();
  const prefix = uid ? 'UID ' : '';
  // writes in an EXAMINEd mailbox: Dovecot answers OK and ignores them, we answer NO
  // [CANNOT]; both are allowed (RFC 3501 §6.4.6), see src/store/imap/README.md
  if (s.readOnly && roll >= 0.2 && roll < 0.6) return pick(['NOOP', 'SEARCH ALL', 'CHECK']);
  if (roll < 0.4) {
    const op = pick(['+', '-', '']);
    return `${prefix}STORE ${set} ${op}FLAGS${r() < 0.3 ? '.SILENT' : ''} (${flags()})`;
  }
  if (roll < 0.47) return `${prefix}COPY ${set} ${pick(['Other', 'INBOX'])}`;
  // MOVE into the selected mailbox has its own test (imap-rfc-answers.test.ts): when the
  // set met a message expunged meanwhile, Dovecot 2.3.19 answered NO [EXPUNGEISSUED] yet
  // expunged messages whose copies never appeared, which is no behaviour to compare with
  if (roll < 0.53) return `${prefix}MOVE ${set} ${s.selected === 'INBOX' ? 'Other' : 'INBOX'}`;
  if (roll < 0.6) return r() < 0.5 ? 'EXPUNGE' : `UID EXPUNGE ${uidSet()}`;
  if (roll < 0.78) {
    const keys = [
      'ALL',
      'SEEN',
      'UNSEEN',
      'FLAGGED',
      'DELETED',
      'UNDELETED',
      'ANSWERED',
      'DRAFT',
      'KEYWORD kw1',
      'UNKEYWORD $Work',
      'HEADER X-Tag ""',
      'HEADER X-Tag t1',
      'SUBJECT hello',
      'FROM "Sender 1"',
      'TO u@example.com',
      'BODY word2',
      'TEXT report',
      'LARGER 200',
      'SMALLER 220',
      'SENTON 2-Mar-2026',
      'SENTBEFORE 3-Mar-2026',
      'SENTSINCE 3-Mar-2026',
      'BEFORE 2-Mar-2026',
      `UID ${uidSet()}`,
      seqSet(),
      'NOT SEEN',
      'OR FLAGGED KEYWORD kw1',
      // decided from the index's search fields, alone or mixed with keys that read the file
      'CC nobody',
      'HEADER Subject report',
      'HEADER From s1@example.org',
      'NOT FROM "Sender 2"',
      'NOT HEADER X-Tag t2',
      'OR SUBJECT meeting BODY word1',
      'BCC u@example.com',
      'ON 1-Mar-2026',
      'SINCE 2-Mar-2026',
      'UNANSWERED',
      'UNDRAFT',
      'UNFLAGGED',
    ];
    return `${prefix}SEARCH ${pick(keys)}${r() < 0.3 ? ` ${pick(keys)}` : ''}`;
  }
  if (roll < 0.92) {
    const items = pick([
      '(UID FLAGS)',
      '(FLAGS RFC822.SIZE)',
      '(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])',
      '(BODY.PEEK[TEXT])',
      '(ENVELOPE)',
      '(BODYSTRUCTURE)',
      'BODY.PEEK[]',
      '(UID BODY[TEXT])',
      '(RFC822.HEADER)',
      '(BODY)',
      '(BODY.PEEK[1] BODY.PEEK[1.MIME])',
      '(BODY.PEEK[]<0.20>)',
    ]);
    return `${prefix}FETCH ${set} ${items}`;
  }
  return pick(['NOOP', 'IDLE', 'CHECK']);
}

export interface DifferentialRun {
  seed: number;
  /** Commands per session. */
  steps: number;
  /** Pairs of sessions (reference, ours) on the same mailbox, one pair per concurrent client. */
  pairs: Array<[Session, Session]>;
  /** The CONDSTORE observers (reference, ours): EXAMINE only, so they take no \Recent. */
  watchers: readonly [Session, Session];
  /**
   * A command the server under test is not compared on (its test says why): another
   * command is drawn instead, for both servers.
   */
  excluded?: (command: string) => boolean;
}

/** Creates `Other` on both sides, then runs the seed's commands with checkpoints. */
export async function runDifferential(run: DifferentialRun): Promise<void> {
  const { seed, pairs, watchers } = run;
  const STEPS = run.steps;
  const SESSIONS = pairs.length;
  const lastHighest = new Map<string, number>();
  const [first, firstOurs] = pairs[0] as [Session, Session];
  await first.run('CREATE Other');
  await firstOurs.run('CREATE Other');

  const r = prng(seed);
  const log: string[] = [];
  const fail = (what: string): never => {
    throw new Error(`seed ${seed}: ${what}\nlast commands:\n${log.slice(-25).join('\n')}`);
  };
  const changedSince = async (): Promise<void> => {
    for (const box of ['INBOX', 'Other']) {
      const changed: string[] = [];
      for (const w of watchers) {
        const key = `${w.name} ${box}`;
        const sel = await w.run(`EXAMINE ${box} (CONDSTORE)`);
        const highest = Number(/\[HIGHESTMODSEQ (\d+)\]/.exec(sel.untagged.join('\n'))?.[1]);
        const before = lastHighest.get(key) ?? 0;
        if (!(highest >= before)) fail(`${key}: HIGHESTMODSEQ ${highest} after ${before}`);
        lastHighest.set(key, highest);
        if (before === 0 || w.model.length === 0) {
          changed.push('');
          continue;
        }
        const reply = await w.run(`FETCH 1:* (UID) (CHANGEDSINCE ${before})`);
        const uids = reply.untagged
          .map((l) => /^\* \d+ FETCH .*UID (\d+)/.exec(l)?.[1])
          .filter((u) => u !== undefined);
        changed.push(
          uids
            .map(Number)
            .sort((a, b) => a - b)
            .join(','),
        );
      }
      if (changed[1] !== changed[0])
        fail(`${box} changed since the last checkpoint: dovecot ${changed[0]}, ours ${changed[1]}`);
    }
  };
  const checkpoint = async (): Promise<void> => {
    await changedSince();
    for (const [ref, ours] of pairs) {
      if (ref.selected === '' || ours.selected === '') continue;
      const views: Array<Array<[number, string]>> = [];
      for (const s of [ref, ours]) {
        await s.run('NOOP');
        const before = s.model.map((e) => ({ ...e }));
        const fetched =
          s.model.length === 0 ? { untagged: [] } : await s.run('FETCH 1:* (UID FLAGS)');
        const view = fetched.untagged
          .filter((l) => /^\* \d+ FETCH/.test(l))
          .map((l): [number, string] => [
            Number(/UID (\d+)/.exec(l)?.[1]),
            normFlags(/FLAGS \(([^)]*)\)/.exec(l)?.[1] ?? '').join(' '),
          ]);
        if (view.length !== before.length)
          fail(`${s.name} believes ${before.length} messages, FETCH shows ${view.length}`);
        before.forEach((e, i) => {
          const [uid, flags] = view[i] as [number, string];
          if (e.uid !== null && e.uid !== uid)
            fail(`${s.name} seq ${i + 1}: believes UID ${e.uid}, FETCH shows ${uid}`);
          if (e.flags !== null && e.flags.join(' ') !== flags)
            fail(
              `${s.name} seq ${i + 1} (UID ${uid}): believes (${e.flags.join(' ')}), FETCH shows (${flags})`,
            );
        });
        views.push(view);
      }
      expect(views[1], `seed ${seed}: ${ours.name} vs ${ref.name}`).toEqual(views[0]);
    }
  };

  for (let step = 0; step < STEPS * SESSIONS; step++) {
    const [ref, ours] = pairs[Math.floor(r() * SESSIONS)] as [Session, Session];
    let command = randomCommand(r, ref, step);
    while (run.excluded?.(command) === true) command = randomCommand(r, ref, step);
    log.push(
      `${ref.name.replace('dovecot', 'session')}${ref.readOnly ? ' (read-only)' : ''}: ${command.split('\u0000')[0]}`,
    );
    const a = await ref.run(command);
    const b = await ours.run(command);
    let ca = comparable(command, a);
    let cb = comparable(command, b);
    if (JSON.stringify(ca) !== JSON.stringify(cb) && /^(UID )?(SEARCH|FETCH)/.test(command)) {
      // Which view a command sees differs while other sessions' changes are pending:
      // Dovecot may report them before or after its answer and still match a message
      // whose EXPUNGE it holds back (§7.4.1), we answer from the view the client has and
      // leave such messages out (src/store/imap/README.md). Settled, answers must agree:
      // both sessions take their pending updates (NOOP) and the command runs again.
      for (const x of [ref, ours]) await x.run('NOOP');
      log.push('  (differed while updates were pending: NOOP, then again)');
      ca = comparable(command, await ref.run(command));
      cb = comparable(command, await ours.run(command));
    }
    const brief = (x: Reply): string =>
      x.untagged
        .filter((l) => /^\* \d+ (EXISTS|EXPUNGE)/.test(l))
        .map((l) => l.slice(0, 60))
        .join(' | ');
    log.push(
      `  dovecot ${a.status} ${a.code} ${brief(a)}\n  ours    ${b.status} ${b.code} ${brief(b)}`,
    );
    if (JSON.stringify(ca) !== JSON.stringify(cb)) {
      for (const x of [ref, ours]) {
        const all = await x.run('FETCH 1:* (UID RFC822.SIZE FLAGS)');
        log.push(
          `  ${x.name}: ${all.untagged.map((l) => l.replace(/^\* (\d+) FETCH \(UID (\d+) RFC822.SIZE (\d+) FLAGS \(([^)]*)\)\)$/, '$1:$2:$3:$4')).join(' ')}`,
        );
      }
    }
    if (JSON.stringify(ca) !== JSON.stringify(cb))
      fail(
        `reply differs for ${command.split('\u0000')[0]}:\ndovecot ${JSON.stringify(ca)}\nours    ${JSON.stringify(cb)}`,
      );
    // EXISTS may come while an EXPUNGE is held back, and EXPUNGE during a UID command
    // or not (§7.4.1): the views may differ for a while; a NOOP must bring them together
    if (ref.model.length !== ours.model.length) {
      await ref.run('NOOP');
      await ours.run('NOOP');
    }
    // Dovecot chooses what an EXPUNGE removes from its session's view before taking in a
    // \Deleted that another session set just before (it reports that flag in the same
    // reply, and removes the message at the next EXPUNGE); RFC 3501 §6.4.3 removes every
    // \Deleted message, as we do. Seen against the device bridge, whose STORE takes a
    // gateway round trip: the same EXPUNGE again on both must bring the views together.
    if (ref.model.length > ours.model.length && /^(UID )?EXPUNGE/.test(command)) {
      log.push('  (Dovecot kept a message another session had just \\Deleted: again)');
      await ref.run(command);
      await ours.run(command);
    }
    if (ref.model.length !== ours.model.length)
      fail(
        `after ${command.split('\u0000')[0]}: dovecot session sees ${ref.model.length} messages, ours ${ours.model.length}`,
      );
    if (step % 40 === 39) await checkpoint();
  }
  await checkpoint();
}
