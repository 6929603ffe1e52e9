/**
 * Every partial FETCH is the same bytes as the whole recrypted message at that range,
 * whatever its offset, its length and the command's form (FETCH by sequence number or
 * UID FETCH, with or without parentheses, other items beside it, BODY[], BODY.PEEK[],
 * BODY[TEXT] or the part BODY[1]; BINARY is not offered, docs/design.md), as the first
 * fetch of a fresh session so that no earlier plan helps, or after another partial fetch
 * in the same session (the plan then comes from the cache or that fetch). Through the
 * real proxy, against Dovecot and the embedded store. The target message has UID 2 and
 * sequence number 1 (UID 1 is expunged first), so a UID taken for a sequence number
 * shows. Also: a sequence number that names another message on the proxy's side
 * connection (an expunge the client's session has not been told of) never gets another
 * message's edits.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STORE_KINDS, startProxyHarness, type ProxyHarness } from '../helpers/proxy-harness.js';
import { decryptWith, encryptToGroup } from '../helpers/proxy-pki.js';
import { openWire, type Wire } from '../helpers/proxy-wire.js';

type Section = 'whole' | 'text' | 'part';
type Form = (range: string) => { command: string; section: Section };

const FORMS: Record<string, Form> = {
  'FETCH n (BODY.PEEK[]<o.l>)': (r) => ({
    command: `FETCH 1 (BODY.PEEK[]${r})`,
    section: 'whole',
  }),
  'FETCH n BODY.PEEK[]<o.l>': (r) => ({ command: `FETCH 1 BODY.PEEK[]${r}`, section: 'whole' }),
  'FETCH n (FLAGS BODY[]<o.l>)': (r) => ({
    command: `FETCH 1 (FLAGS BODY[]${r})`,
    section: 'whole',
  }),
  'FETCH n:n (BODY.PEEK[]<o.l> UID)': (r) => ({
    command: `FETCH 1:1 (BODY.PEEK[]${r} UID)`,
    section: 'whole',
  }),
  'UID FETCH u (BODY.PEEK[]<o.l>)': (r) => ({
    command: `UID FETCH 2 (BODY.PEEK[]${r})`,
    section: 'whole',
  }),
  'FETCH n (BODY.PEEK[TEXT]<o.l>)': (r) => ({
    command: `FETCH 1 (BODY.PEEK[TEXT]${r})`,
    section: 'text',
  }),
  'UID FETCH u BODY.PEEK[TEXT]<o.l>': (r) => ({
    command: `UID FETCH 2 BODY.PEEK[TEXT]${r}`,
    section: 'text',
  }),
  'FETCH n (BODY.PEEK[1]<o.l>)': (r) => ({
    command: `FETCH 1 (BODY.PEEK[1]${r})`,
    section: 'part',
  }),
  'UID FETCH u (BODY[1]<o.l>)': (r) => ({ command: `UID FETCH 2 (BODY[1]${r})`, section: 'part' }),
};

/** The literal of the first `* n FETCH` response in `text`. */
function firstLiteral(text: string): Buffer {
  const from = text.search(/\* \d+ FETCH/);
  const match = /\{(\d+)\}\r\n/.exec(text.slice(from));
  if (from === -1 || match === null) throw new Error(`no FETCH literal in:\n${text}`);
  const start = from + match.index + match[0].length;
  return Buffer.from(text.slice(start, start + Number(match[1])), 'latin1');
}

describe.each(STORE_KINDS)('partial FETCH through the proxy (%s upstream)', (kind) => {
  let h: ProxyHarness;
  const plain = Buffer.from(
    'From: carol@example.org\r\nSubject: partials\r\n\r\n' + 'some words of text\r\n'.repeat(200),
  );
  let stored: Buffer;
  const whole: Record<Section, Buffer> = {
    whole: Buffer.alloc(0),
    text: Buffer.alloc(0),
    part: Buffer.alloc(0),
  };

  /** A session on the store itself, as the user (master login), for setup and checks. */
  async function direct(): Promise<Wire> {
    const w = await openWire(h.upstream.imapPort);
    const credential = Buffer.from(
      `${h.user.address}\0${h.upstream.masterUser}\0${h.upstream.masterPassword}`,
    ).toString('base64');
    w.send(`D1 AUTHENTICATE PLAIN ${credential}\r\nD2 SELECT INBOX\r\n`);
    await w.waitFor(/\nD2 OK .*\r\n/);
    return w;
  }

  async function proxySession(): Promise<Wire> {
    const w = await openWire(h.proxy.ports.starttls!);
    await w.waitFor(/^\* OK .*\r\n/);
    w.send(`L LOGIN ${h.user.address} ${h.user.devices[0]!.password}\r\nS SELECT INBOX\r\n`);
    await w.waitFor(/\nS OK .*\r\n/);
    return w;
  }

  /**
   * One command in a fresh proxy session, as its first fetch or after `earlier` (whose
   * answer must complete first); its literal.
   */
  async function fetchFresh(command: string, earlier?: string): Promise<Buffer> {
    const w = await proxySession();
    try {
      let from = 0;
      if (earlier !== undefined) {
        w.send(`E ${earlier}\r\n`);
        from = (await w.waitFor(/\nE OK .*\r\n/)).length;
      }
      w.send(`P ${command}\r\n`);
      return firstLiteral((await w.waitFor(/\nP OK .*\r\n/)).slice(from));
    } finally {
      w.send('Z LOGOUT\r\n');
      await w.closed();
    }
  }

  beforeAll(async () => {
    h = await startProxyHarness({}, 1, kind);
    await h.deliver(Buffer.from('From: a@example.org\r\nSubject: gone\r\n\r\nbye\r\n')); // UID 1
    stored = await encryptToGroup(plain, h.user.group, 'partials'); // UID 2
    await h.deliver(stored);
    const d = await direct();
    d.send('D3 UID STORE 1 +FLAGS.SILENT (\\Deleted)\r\nD4 EXPUNGE\r\n');
    await d.waitFor(/\nD4 OK .*\r\n/);
    d.close();
    whole.whole = await fetchFresh('UID FETCH 2 (BODY.PEEK[])');
    whole.text = await fetchFresh('UID FETCH 2 (BODY.PEEK[TEXT])');
    whole.part = await fetchFresh('UID FETCH 2 (BODY.PEEK[1])');
    // A single-part message: its part 1 is its text (RFC 3501 §6.4.5).
    expect(whole.part.equals(whole.text)).toBe(true);
    expect((await decryptWith(whole.whole, h.user.devices[0]!)).equals(plain)).toBe(true);
  }, 60_000);
  afterAll(async () => {
    await h?.stop();
  });

  interface Partial {
    form: string;
    offset: number;
    length: number;
  }

  async function check(
    form: string,
    offset: number,
    length: number,
    earlier?: Partial,
  ): Promise<void> {
    const { command, section } = FORMS[form]!(`<${offset}.${length}>`);
    const before =
      earlier === undefined
        ? undefined
        : FORMS[earlier.form]!(`<${earlier.offset}.${earlier.length}>`).command;
    const got = await fetchFresh(command, before);
    const want = whole[section].subarray(offset, offset + length);
    const said = before === undefined ? command : `${command} after ${before}`;
    expect(got.length, said).toBe(want.length);
    expect(got.equals(want), `${said}: bytes differ from the whole recrypted message`).toBe(true);
  }

  it('a first fetch of <0.N> by sequence number that ends inside the CMS prefix is recrypted', async () => {
    for (const length of [500, 700, 1000]) await check('FETCH n (BODY.PEEK[]<o.l>)', 0, length);
  }, 60_000);

  it('the same partial later in a session, after a first fetch by sequence number, is recrypted', async () => {
    const first = { form: 'FETCH n (BODY.PEEK[]<o.l>)', offset: 0, length: 600 };
    await check('FETCH n (BODY.PEEK[]<o.l>)', 0, 600, first);
    await check('FETCH n (BODY.PEEK[]<o.l>)', 600, 4000, first);
    await check('UID FETCH u (BODY.PEEK[]<o.l>)', 0, 900, first);
  }, 60_000);

  it('every (offset, length, command form, first or later fetch) matches the whole recrypted message', async () => {
    const size = whole.whole.length;
    const partial = fc.record({
      form: fc.constantFrom(...Object.keys(FORMS)),
      offset: fc.oneof(
        fc.constant(0),
        fc.integer({ min: 0, max: 1200 }),
        fc.integer({ min: 0, max: size + 10 }),
      ),
      // Often short enough to end inside the CMS prefix (about the first 1,000 bytes).
      length: fc.oneof(fc.integer({ min: 1, max: 1200 }), fc.integer({ min: 1, max: 3000 })),
    });
    await fc.assert(
      fc.asyncProperty(partial, fc.option(partial, { nil: undefined }), (p, earlier) =>
        check(p.form, p.offset, p.length, earlier),
      ),
      { numRuns: 80 },
    );
  }, 300_000);

  it('a sequence number that names another message on the side connection never gets its edits', async () => {
    // Two more messages: sequence 2 and 3 in a session opened now.
    await h.deliver(await encryptToGroup(plain, h.user.group, 'third')); // UID 3
    await h.deliver(await encryptToGroup(plain, h.user.group, 'fourth')); // UID 4
    const w = await proxySession();
    try {
      // Another session expunges UID 2; the client's session is not told until its next
      // command that allows it, so for the client sequence 2 is still UID 3, while the
      // side connection (after its NOOP) numbers UID 3 as 1 and UID 4 as 2.
      const d = await direct();
      d.send('D3 UID STORE 2 +FLAGS.SILENT (\\Deleted)\r\nD4 EXPUNGE\r\n');
      await d.waitFor(/\nD4 OK .*\r\n/);
      d.close();
      w.send('P FETCH 2 (BODY.PEEK[]<0.700>)\r\n');
      const text = await w.waitFor(/\nP (OK|NO) .*\r\n/);
      const at = text.indexOf('* 2 FETCH');
      expect(at).toBeGreaterThan(-1);
      const match = /\{(\d+)\}\r\n/.exec(text.slice(at))!;
      const start = at + match.index + match[0].length;
      const got = Buffer.from(text.slice(start, start + Number(match[1])), 'latin1');
      // RFC 3501 §7.4.1 keeps EXPUNGE out of a FETCH's responses; a store that told the
      // client before the FETCH has renumbered its session too.
      const told = /\* 1 EXPUNGE\r\n/.test(text.slice(0, at));
      const uid = told ? 4 : 3;
      const recrypted = await fetchFresh(`UID FETCH ${uid} (BODY.PEEK[]<0.700>)`);
      const d2 = await direct();
      d2.send(`D3 UID FETCH ${uid} (BODY.PEEK[]<0.700>)\r\n`);
      const stored = firstLiteral(await d2.waitFor(/\nD3 OK .*\r\n/));
      d2.close();
      expect(recrypted.equals(stored)).toBe(false);
      // Either that message's edits or none (its stored bytes): never another message's.
      expect(got.equals(recrypted) || got.equals(stored)).toBe(true);
    } finally {
      w.close();
    }
  }, 60_000);
});
