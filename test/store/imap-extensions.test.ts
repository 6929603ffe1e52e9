import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendAll, esearchMails, mailText, untagged } from '../helpers/store-extensions.js';
import { plain, startStoreServer, Wire, type StoreServer } from '../helpers/store-imap.js';

/**
 * ESEARCH (RFC 4731), LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819) and MULTIAPPEND
 * (RFC 3502) on the embedded store, over a real socket, with the RFCs' examples.
 * test/store/imap-extensions-dovecot.test.ts checks the same answers against Dovecot.
 */
describe('IMAP extensions: ESEARCH, LIST-EXTENDED, LIST-STATUS, MULTIAPPEND', () => {
  let s: StoreServer;
  let w: Wire;

  beforeAll(async () => {
    s = await startStoreServer(['alice']);
    w = await Wire.open(s.server.port);
    expect(await w.command('l', `AUTHENTICATE PLAIN ${plain('alice')}`)).toMatch(/^l OK/m);
    await appendAll(w, 'INBOX', esearchMails());
    for (const box of ['foo', 'bar/baz', 'Lists', 'Lists/Work', 'Lists/Play'])
      expect(await w.command('c', `CREATE ${box}`)).toMatch(/^c OK/m);
    await w.command('s', 'SUBSCRIBE Lists/Work');
    await w.command('s', 'SUBSCRIBE foo');
    await appendAll(w, 'foo', esearchMails().slice(0, 3));
  });

  afterAll(async () => {
    w?.close();
    for (const b of extra) b.close();
    await s?.stop();
  });

  const extra: Wire[] = [];
  /** A second session for commands answered BAD (ten BADs in a row end a session). */
  async function fresh(select?: string): Promise<Wire> {
    const b = await Wire.open(s.server.port);
    extra.push(b);
    expect(await b.command('l', `AUTHENTICATE PLAIN ${plain('alice')}`)).toMatch(/^l OK/m);
    if (select !== undefined) await b.command('s', `SELECT ${select}`);
    return b;
  }

  it('advertises each extension', async () => {
    const caps = untagged(await w.command('c', 'CAPABILITY'))[0]?.split(' ') ?? [];
    for (const cap of [
      'ESEARCH',
      'LIST-EXTENDED',
      'LIST-STATUS',
      'SORT',
      'THREAD=ORDEREDSUBJECT',
      'THREAD=REFERENCES',
      'MULTIAPPEND',
    ])
      expect(caps).toContain(cap);
    expect(caps).not.toContain('BINARY');
  });

  describe('ESEARCH (RFC 4731 §3)', () => {
    beforeAll(async () => {
      expect(await w.command('sel', 'SELECT INBOX')).toMatch(/\* 11 EXISTS/);
    });

    it.each([
      [
        'A282 SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"',
        '* ESEARCH (TAG "A282") MIN 2 COUNT 3',
      ],
      [
        'A283 SEARCH RETURN () FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"',
        '* ESEARCH (TAG "A283") ALL 2,10:11',
      ],
      ['A284 SEARCH RETURN (MIN) UNSEEN', '* ESEARCH (TAG "A284") MIN 4'],
      ['A285 UID SEARCH RETURN (MIN MAX) 1:5000', '* ESEARCH (TAG "A285") UID MIN 1 MAX 11'],
      ['A286 SEARCH RETURN (COUNT MAX) SEEN', '* ESEARCH (TAG "A286") MAX 3 COUNT 3'],
      // no match: MIN, MAX and ALL are left out, COUNT is 0 (§3.1)
      ['A287 SEARCH RETURN (MIN MAX ALL COUNT) DELETED', '* ESEARCH (TAG "A287") COUNT 0'],
      ['A288 SEARCH RETURN (ALL) DELETED', '* ESEARCH (TAG "A288")'],
      [
        'A289 UID SEARCH RETURN (ALL) CHARSET UTF-8 NOT SEEN',
        '* ESEARCH (TAG "A289") UID ALL 4:11',
      ],
    ])('%s', async (line, expected) => {
      const tag = line.split(' ')[0] as string;
      const reply = await w.command(tag, line.slice(tag.length + 1));
      expect(untagged(reply)).toEqual([expected]);
      expect(reply).toMatch(new RegExp(`^${tag} OK`, 'm'));
    });

    it('keeps the RFC 3501 SEARCH response without RETURN', async () => {
      expect(untagged(await w.command('p', 'SEARCH FLAGGED'))).toEqual(['* SEARCH 1 2 10 11']);
    });

    it.each([
      'SEARCH RETURN (SAVE) ALL',
      'SEARCH RETURN (MIN ALL',
      'SEARCH RETURN MIN ALL',
      'SEARCH RETURN (MIN)',
    ])('answers BAD to %s', async (line) => {
      expect(await (await fresh('INBOX')).command('b', line)).toMatch(/^b BAD /m);
    });

    it('answers NO [BADCHARSET] with RETURN and an unknown charset', async () => {
      expect(await w.command('b', 'SEARCH RETURN (COUNT) CHARSET KOI8-R ALL')).toMatch(
        /^b NO \[BADCHARSET/m,
      );
    });
  });

  describe('LIST-STATUS (RFC 5819 §2)', () => {
    it('sends STATUS right after the LIST of each selectable mailbox, none for \\Noselect', async () => {
      const lines = untagged(await w.command('A01', 'LIST "" % RETURN (STATUS (MESSAGES UNSEEN))'));
      expect(lines).toContain('* LIST (\\Noselect \\HasChildren) "/" bar');
      const at = (l: string): number => lines.indexOf(l);
      expect(lines[at('* LIST (\\HasNoChildren) "/" INBOX') + 1]).toBe(
        '* STATUS INBOX (MESSAGES 11 UNSEEN 8)',
      );
      expect(lines[at('* LIST (\\HasNoChildren) "/" foo') + 1]).toBe(
        '* STATUS foo (MESSAGES 3 UNSEEN 0)',
      );
      expect(lines[at('* LIST (\\Noselect \\HasChildren) "/" bar') + 1]).not.toMatch(/STATUS/);
      expect(lines.filter((l) => l.startsWith('* STATUS bar '))).toEqual([]);
      const lists = lines.filter((l) => l.startsWith('* LIST'));
      const statuses = lines.filter((l) => l.startsWith('* STATUS'));
      expect(statuses.length).toBe(lists.length - 1);
    });

    it('answers BAD to an unknown status item', async () => {
      expect(
        await (await fresh()).command('b', 'LIST "" % RETURN (STATUS (MESSAGES BOGUS))'),
      ).toMatch(/^b BAD /m);
    });
  });

  describe('LIST-EXTENDED (RFC 5258 §5)', () => {
    it('selects subscribed mailboxes with \\Subscribed', async () => {
      const lines = untagged(await w.command('A02', 'LIST (SUBSCRIBED) "" *'));
      // INBOX and the special-use folders are subscribed when the user is created
      expect(
        lines.filter((l) => !/\\(Sent|Drafts|Trash|Junk|Archive) |INBOX$/.test(l)).sort(),
      ).toEqual([
        '* LIST (\\HasNoChildren \\Subscribed) "/" Lists/Work',
        '* LIST (\\HasNoChildren \\Subscribed) "/" foo',
      ]);
      expect(lines.join('\n')).not.toMatch(/ (bar|Lists|Lists\/Play)$/m);
    });

    it('adds \\Subscribed with RETURN (SUBSCRIBED) without narrowing', async () => {
      const lines = untagged(
        await w.command('A03', 'LIST "" "Lists/*" RETURN (SUBSCRIBED CHILDREN)'),
      );
      expect(lines.sort()).toEqual([
        '* LIST (\\HasNoChildren \\Subscribed) "/" Lists/Work',
        '* LIST (\\HasNoChildren) "/" Lists/Play',
      ]);
    });

    it('lists an unsubscribed parent of a subscribed child with CHILDINFO under RECURSIVEMATCH', async () => {
      const lines = untagged(await w.command('A04', 'LIST (SUBSCRIBED RECURSIVEMATCH) "" %'));
      expect(lines).toContain('* LIST (\\HasChildren) "/" Lists ("CHILDINFO" ("SUBSCRIBED"))');
      expect(lines).toContain('* LIST (\\HasNoChildren \\Subscribed) "/" foo');
      expect(lines.join('\n')).not.toMatch(/"\/" (bar|bar\/baz|Lists\/Work)$/m);
    });

    it('lists subscribed names without a mailbox as \\NonExistent, and CHILDINFO also on a subscribed parent (RFC 5258 §5 examples)', async () => {
      await w.command('s', 'SUBSCRIBE Ghost');
      await w.command('s', 'SUBSCRIBE Lists');
      await w.command('s', 'SUBSCRIBE Lists/Gone');
      try {
        const lines = untagged(await w.command('A07', 'LIST (SUBSCRIBED) "" *'));
        expect(lines).toContain('* LIST (\\NonExistent \\HasNoChildren \\Subscribed) "/" Ghost');
        expect(lines).toContain(
          '* LIST (\\NonExistent \\HasNoChildren \\Subscribed) "/" Lists/Gone',
        );
        const recursive = untagged(await w.command('A08', 'LIST (SUBSCRIBED RECURSIVEMATCH) "" %'));
        expect(recursive).toContain(
          '* LIST (\\HasChildren \\Subscribed) "/" Lists ("CHILDINFO" ("SUBSCRIBED"))',
        );
        expect(recursive).toContain(
          '* LIST (\\NonExistent \\HasNoChildren \\Subscribed) "/" Ghost',
        );
        // a plain LIST lists what exists; LSUB every subscription (RFC 3501 §6.3.9)
        expect((await w.command('p', 'LIST "" *')).includes('Ghost')).toBe(false);
        expect(untagged(await w.command('p', 'LSUB "" *'))).toContain(
          '* LSUB (\\Noselect \\HasNoChildren) "/" Ghost',
        );
      } finally {
        await w.command('u', 'UNSUBSCRIBE Ghost');
        await w.command('u', 'UNSUBSCRIBE Lists');
        await w.command('u', 'UNSUBSCRIBE Lists/Gone');
      }
    });

    it('ORs several patterns and lists each mailbox once', async () => {
      const lines = untagged(await w.command('A05', 'LIST "" ("INBOX" "foo" "f*" "%o%")'));
      expect(lines.sort()).toEqual([
        '* LIST (\\HasNoChildren) "/" INBOX',
        '* LIST (\\HasNoChildren) "/" foo',
      ]);
    });

    it('selects special-use mailboxes (RFC 6154 §3)', async () => {
      const lines = untagged(await w.command('A06', 'LIST (SPECIAL-USE) "" *'));
      expect(lines.map((l) => l.replace(/^.*"\/" /, '')).sort()).toEqual([
        'Archive',
        'Drafts',
        'Junk',
        'Sent',
        'Trash',
      ]);
    });

    it('keeps the plain LIST and LSUB answers', async () => {
      expect(untagged(await w.command('p', 'LIST "" foo'))).toEqual([
        '* LIST (\\HasNoChildren) "/" foo',
      ]);
      expect(untagged(await w.command('p', 'LIST () "" ""'))).toEqual([
        '* LIST (\\Noselect) "/" ""',
      ]);
      expect(await (await fresh()).command('p', 'LSUB "" (foo)')).toMatch(/^p BAD /m);
    });

    it.each([
      'LIST (RECURSIVEMATCH) "" %',
      'LIST (BOGUS) "" %',
      'LIST "" % RETURN (BOGUS)',
      'LIST "" % (SUBSCRIBED)',
      'LIST "" ()',
      'LIST (SUBSCRIBED "" %',
    ])('answers BAD to %s', async (line) => {
      expect(await (await fresh()).command('b', line)).toMatch(/^b BAD /m);
    });
  });

  describe('MULTIAPPEND (RFC 3502)', () => {
    const one = mailText({ from: 'a@example.net', subject: 'one', date: null, internal: '' });
    const two = mailText({ from: 'b@example.net', subject: 'two', date: null, internal: '' });

    it('stores every message with its own flags and date, APPENDUID naming all (RFC 4315)', async () => {
      const reply = await w.command(
        'A003',
        `APPEND Lists/Play (\\Seen) "07-Feb-1994 21:52:25 -0800" {${one.length}+}\r\n${one} (\\Flagged) {${two.length}+}\r\n${two} {${one.length}+}\r\n${one}`,
      );
      expect(reply).toMatch(/^A003 OK \[APPENDUID \d+ 1:3\] /m);
      await w.command('sel', 'SELECT Lists/Play');
      const fetched = untagged(await w.command('f', 'FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE)'));
      // \Recent is session state (RFC 3501 §2.3.2), not part of what was appended
      const plain = fetched.map((l) => l.replace(/ ?\\Recent/, ''));
      expect(plain).toHaveLength(3);
      expect(plain[0]).toBe(
        `* 1 FETCH (FLAGS (\\Seen) INTERNALDATE " 8-Feb-1994 05:52:25 +0000" RFC822.SIZE ${one.length})`,
      );
      expect(plain[1]).toMatch(
        new RegExp(
          `^\\* 2 FETCH \\(FLAGS \\(\\\\Flagged\\) INTERNALDATE "[^"]+" RFC822.SIZE ${two.length}\\)$`,
        ),
      );
      expect(plain[2]).toMatch(
        new RegExp(
          `^\\* 3 FETCH \\(FLAGS \\(\\) INTERNALDATE "[^"]+" RFC822.SIZE ${one.length}\\)$`,
        ),
      );
      expect(await w.command('f', 'UID FETCH 2 BODY.PEEK[HEADER.FIELDS (SUBJECT)]')).toContain(
        'Subject: two',
      );
      await w.command('u', 'UNSELECT');
    });

    it('stores none when one message fails (§3), and says why', async () => {
      const before = untagged(await w.command('st', 'STATUS Lists/Work (MESSAGES)'));
      expect(before).toEqual(['* STATUS Lists/Work (MESSAGES 0)']);
      // the 27th distinct keyword is more than a Maildir mailbox can hold (src/store/README.md)
      const many = Array.from({ length: 26 }, (_, i) => `kw${i}`).join(' ');
      const reply = await w.command(
        'A004',
        `APPEND Lists/Work (extra) {${one.length}+}\r\n${one} {${two.length}+}\r\n${two} (${many}) {${one.length}+}\r\n${one}`,
      );
      expect(reply).toMatch(/^A004 NO \[LIMIT\] /m);
      expect(untagged(await w.command('st', 'STATUS Lists/Work (MESSAGES)'))).toEqual([
        '* STATUS Lists/Work (MESSAGES 0)',
      ]);
    });

    it('answers NO [TRYCREATE] for a missing mailbox and stores nothing', async () => {
      const reply = await w.command(
        'A005',
        `APPEND Nowhere {${one.length}+}\r\n${one} {${two.length}+}\r\n${two}`,
      );
      expect(reply).toMatch(/^A005 NO \[TRYCREATE\] /m);
    });

    it('answers BAD to a second message without its literal', async () => {
      expect(await w.command('b', `APPEND foo {${one.length}+}\r\n${one} (\\Seen)`)).toMatch(
        /^b BAD /m,
      );
      expect(untagged(await w.command('st', 'STATUS foo (MESSAGES)'))).toEqual([
        '* STATUS foo (MESSAGES 3)',
      ]);
    });
  });
});
