import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type Dovecot } from '../helpers/dovecot.js';
import {
  appendAll,
  esearchMails,
  tangledMails,
  threadMails,
  untagged,
} from '../helpers/store-extensions.js';
import { plain, startStoreServer, Wire, type StoreServer } from '../helpers/store-imap.js';

/**
 * Dovecot (Debian's imapd) as the oracle for ESEARCH, SORT, THREAD and LIST-EXTENDED /
 * LIST-STATUS: the same messages appended to both, the same commands, the same untagged
 * answers expected.
 */
const USER = 'alice@example.org';
// Dovecot's defaults differ from the embedded store's layout in two ways the comparison needs equal: '/' as the separator and the special-use folders.
const NAMESPACE = `namespace inbox {
  inbox = yes
  separator = /
  mailbox Sent {
    auto = subscribe
    special_use = \\Sent
  }
  mailbox Drafts {
    auto = subscribe
    special_use = \\Drafts
  }
  mailbox Trash {
    auto = subscribe
    special_use = \\Trash
  }
  mailbox Junk {
    auto = subscribe
    special_use = \\Junk
  }
  mailbox Archive {
    auto = subscribe
    special_use = \\Archive
  }
}`;

let dovecot: Dovecot;
let store: StoreServer;
let ours: Wire;
let theirs: Wire;

async function login(port: number, authcid: string, password: string): Promise<Wire> {
  const w = await Wire.open(port);
  const reply = await w.command('l', `AUTHENTICATE PLAIN ${plain(USER, authcid, password)}`);
  if (!/^l OK/m.test(reply)) throw new Error(reply);
  return w;
}

/** Runs `line` on both servers and returns [ours, Dovecot's] untagged lines. */
async function both(line: string): Promise<[string[], string[]]> {
  const a = await ours.command('c', line);
  const b = await theirs.command('c', line);
  expect(a).toMatch(/^c OK/m);
  expect(b).toMatch(/^c OK/m);
  return [untagged(a), untagged(b)];
}

beforeAll(async () => {
  dovecot = await startDovecot({ extraConfig: NAMESPACE });
  store = await startStoreServer([USER]);
  ours = await login(store.server.port, 'gateway', 'master-secret-for-tests');
  theirs = await login(dovecot.imapPort, dovecot.masterUser, dovecot.masterPassword);
  for (const w of [ours, theirs]) {
    // touch every special-use folder so Dovecot creates its auto ones
    await w.command('l0', 'LIST "" *');
    for (const box of ['Lists', 'Lists/Work', 'Lists/Work/Old', 'Projects', 'Empty'])
      await w.command('c0', `CREATE ${box}`);
    await w.command('s0', 'SUBSCRIBE Lists/Work');
    await w.command('s1', 'SUBSCRIBE Projects');
    await w.command('s2', 'UNSUBSCRIBE Lists');
    await w.command('s3', 'SUBSCRIBE INBOX');
    await appendAll(w, 'INBOX', esearchMails());
    await appendAll(w, 'Lists/Work', threadMails());
    await appendAll(w, 'Projects', tangledMails());
  }
});

afterAll(async () => {
  ours?.close();
  theirs?.close();
  await store?.stop();
  await dovecot?.remove();
});

describe('ESEARCH (RFC 4731) as Dovecot answers it', () => {
  it.each([
    'SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"',
    'SEARCH RETURN () FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"',
    'SEARCH RETURN (MIN) UNSEEN',
    'UID SEARCH RETURN (MIN MAX) 1:5000',
    'SEARCH RETURN (ALL) 1:*',
    'SEARCH RETURN (COUNT) DELETED',
    'SEARCH RETURN (MIN MAX ALL COUNT) DELETED',
    'UID SEARCH RETURN (ALL COUNT) UNSEEN',
  ])('%s', async (command) => {
    await ours.command('sel', 'SELECT INBOX');
    await theirs.command('sel', 'SELECT INBOX');
    const [a, b] = await both(command);
    expect(a).toEqual(b);
  });
});

describe('SORT and THREAD (RFC 5256) as Dovecot answers them', () => {
  it.each([
    'SORT (SUBJECT) UTF-8 ALL',
    'SORT (REVERSE SUBJECT DATE) UTF-8 ALL',
    'SORT (DATE) UTF-8 ALL',
    'SORT (REVERSE DATE) UTF-8 ALL',
    'SORT (ARRIVAL) UTF-8 ALL',
    'SORT (FROM) UTF-8 ALL',
    'SORT (TO SUBJECT) UTF-8 ALL',
    'SORT (CC) UTF-8 ALL',
    'SORT (SIZE) US-ASCII ALL',
    'SORT (REVERSE SIZE) UTF-8 ALL',
    'UID SORT (SUBJECT ARRIVAL) UTF-8 NOT FROM bob',
    'THREAD ORDEREDSUBJECT UTF-8 ALL',
    'THREAD REFERENCES UTF-8 ALL',
    'UID THREAD REFERENCES UTF-8 NOT FROM carol',
    'THREAD REFERENCES UTF-8 NOT SUBJECT Lunch',
    'THREAD ORDEREDSUBJECT UTF-8 SUBJECT Budget',
    'THREAD REFERENCES UTF-8 SUBJECT Lunch NOT FROM bob',
    'UID SORT (REVERSE FROM ARRIVAL) UTF-8 SUBJECT Budget',
  ])('%s', async (command) => {
    await ours.command('sel', 'SELECT Lists/Work');
    await theirs.command('sel', 'SELECT Lists/Work');
    const [a, b] = await both(command);
    expect(a).toEqual(b);
  });
});

describe('THREAD over references that disagree, as Dovecot answers it', () => {
  it.each([
    'THREAD REFERENCES UTF-8 ALL',
    'THREAD ORDEREDSUBJECT UTF-8 ALL',
    'THREAD REFERENCES UTF-8 NOT SUBJECT Loop',
    'THREAD REFERENCES UTF-8 SUBJECT Chain',
    'UID THREAD REFERENCES UTF-8 NOT SUBJECT Self',
    'SORT (SUBJECT REVERSE DATE) UTF-8 ALL',
  ])('%s', async (command) => {
    await ours.command('sel', 'SELECT Projects');
    await theirs.command('sel', 'SELECT Projects');
    const [a, b] = await both(command);
    expect(a).toEqual(b);
  });
});

describe('LIST-EXTENDED (RFC 5258) and LIST-STATUS (RFC 5819) as Dovecot answers them', () => {
  it.each([
    'LIST "" %',
    'LIST () "" %',
    'LIST (SUBSCRIBED) "" *',
    'LIST (SUBSCRIBED RECURSIVEMATCH) "" %',
    'LIST "" % RETURN (SUBSCRIBED)',
    'LIST "" ("INBOX" "Lists/%") RETURN (CHILDREN)',
    'LIST (SPECIAL-USE) "" *',
    'LIST "" % RETURN (STATUS (MESSAGES UNSEEN UIDNEXT))',
    'LIST "Lists/" * RETURN (SUBSCRIBED STATUS (MESSAGES))',
  ])('%s', async (command) => {
    const [a, b] = await both(command);
    expect(normalizeList(a, b)).toEqual(b.map(canonical).sort());
  });
});

/** `* LIST (attrs) "/" name [extended]` → its parts; `* STATUS name (items)` with the items in a fixed order. */
function canonical(line: string): string {
  const status = /^\* STATUS (\S+) \((.*)\)$/.exec(line);
  if (status !== null) {
    const pairs = (status[2] ?? '').match(/\S+ \S+/g) ?? [];
    return `* STATUS ${status[1]} (${pairs.sort().join(' ')})`;
  }
  // RFC 5258 allows the extended item tag as atom or string; Dovecot sends an atom.
  return line.replace('("CHILDINFO" ', '(CHILDINFO ');
}

const OPTIONAL_ATTRS = new Set([
  '\\HasChildren',
  '\\HasNoChildren',
  '\\Sent',
  '\\Drafts',
  '\\Trash',
  '\\Junk',
  '\\Archive',
]);

/**
 * Our LIST lines, with the attributes the embedded store always sends (CHILDREN,
 * SPECIAL-USE; RFC 5258 §3 and RFC 6154 §2 let a server send them unasked) dropped where
 * Dovecot's line for the same mailbox has none, so that everything else must be equal.
 */
function normalizeList(ours: string[], dovecots: string[]): string[] {
  const LIST = /^\* LIST \(([^)]*)\) ("\/") (\S+)(.*)$/;
  const theirAttrs = new Map<string, Set<string>>();
  for (const line of dovecots) {
    const m = LIST.exec(line);
    if (m !== null)
      theirAttrs.set(m[3] as string, new Set((m[1] as string).split(' ').filter(Boolean)));
  }
  return ours
    .map((line) => {
      const m = LIST.exec(line);
      if (m === null) return canonical(line);
      const theirs = theirAttrs.get(m[3] as string) ?? new Set<string>();
      const attrs = (m[1] as string)
        .split(' ')
        .filter((a) => a !== '' && (!OPTIONAL_ATTRS.has(a) || theirs.has(a)));
      return canonical(`* LIST (${attrs.join(' ')}) ${m[2]} ${m[3]}${m[4]}`);
    })
    .sort();
}
