/**
 * The client-facing parsers on their own: the pre-auth command reader, the relay's
 * framing (literals pass through byte for byte, refused commands are replaced, the
 * selected mailbox is tracked), and the capability filter.
 */
import { describe, expect, it } from 'vitest';
import { filterCapabilities } from '../../src/imap/capabilities.js';
import { ClientRelay } from '../../src/imap/client-relay.js';
import {
  PREAUTH_COMMAND_CAP,
  PREAUTH_LINE_TOO_LONG,
  PreauthReader,
  type PreauthEvent,
} from '../../src/imap/preauth.js';
import { SelectionTracker } from '../../src/imap/selection.js';

function drain(reader: PreauthReader): PreauthEvent[] {
  const events: PreauthEvent[] = [];
  for (let event = reader.next(); event !== null; event = reader.next()) events.push(event);
  return events;
}

describe('pre-auth reader', () => {
  it('reads atoms, quoted strings and both literal forms, split anywhere', () => {
    const input = Buffer.from(
      'a1 LOGIN "us\\"er" {4}\r\npa s\r\na2 AUTHENTICATE PLAIN {3+}\r\nabc\r\na3 noop\r\n',
    );
    for (const step of [1, 3, input.length]) {
      const reader = new PreauthReader();
      const events: PreauthEvent[] = [];
      for (let i = 0; i < input.length; i += step) {
        reader.push(input.subarray(i, i + step));
        events.push(...drain(reader));
      }
      expect(
        events.map((e) =>
          e.type === 'command'
            ? [e.command.tag, e.command.name, ...e.command.args.map(String)]
            : e.type,
        ),
      ).toEqual([
        'continue',
        ['a1', 'LOGIN', 'us"er', 'pa s'],
        ['a2', 'AUTHENTICATE', 'PLAIN', 'abc'],
        ['a3', 'NOOP'],
      ]);
    }
  });

  it('refuses what it must not hold: oversized commands and literals, broken quoting', () => {
    const reader = new PreauthReader();
    reader.push(Buffer.from('b1 LOGIN "open\r\n'));
    expect(drain(reader)).toEqual([{ type: 'bad', tag: 'b1', text: 'Syntax error' }]);
    reader.push(Buffer.from('b2 LOGIN {70000}\r\n'));
    expect(drain(reader)).toEqual([{ type: 'too-long' }]);
    const long = new PreauthReader();
    long.push(Buffer.alloc(70_000, 0x61));
    expect(drain(long)).toEqual([{ type: 'too-long' }]);
  });

  it('reads the largest RFC 2971 ID (30 pairs, 30-octet fields, 1024-octet values) in one command', () => {
    const pairs = Array.from(
      { length: 30 },
      (_, i) => `"${String(i).padStart(30, 'f')}" "${'v'.repeat(1023)}\\\\"`,
    );
    const line = `i1 ID (${pairs.join(' ')})\r\n`;
    expect(line.length).toBeGreaterThan(31_800);
    const reader = new PreauthReader();
    for (let i = 0; i < line.length; i += 1000) reader.push(Buffer.from(line.slice(i, i + 1000)));
    const events = drain(reader);
    expect(events).toHaveLength(1);
    const event = events[0]!;
    expect(event.type === 'command' && event.command.name).toBe('ID');
    expect(event.type === 'command' && event.command.args.length).toBe(61);
  });

  it('holds at most one capped line of an AUTHENTICATE response, however much is sent', () => {
    const reader = new PreauthReader();
    const chunk = Buffer.alloc(1 << 20, 0x41);
    let most = 0;
    for (let i = 0; i < 24; i++) {
      reader.push(chunk);
      expect(reader.nextLine()).toBeNull();
      most = Math.max(most, reader.pending);
    }
    reader.push(Buffer.from('\r\nn1 NOOP\r\n'));
    expect(reader.nextLine()).toBe(PREAUTH_LINE_TOO_LONG);
    // Dropped as it came: never more than the cap plus the chunk being read.
    expect(most).toBeLessThanOrEqual(PREAUTH_COMMAND_CAP + chunk.length);
    const short = new PreauthReader();
    short.push(Buffer.from('AGFsaWNlAHB3\r\nn1 NOOP\r\n'));
    expect(short.nextLine()).toBe('AGFsaWNlAHB3');
    expect(drain(short).map((e) => e.type)).toEqual(['command']);
  });
});

describe('client relay', () => {
  async function relay(
    chunks: (string | Buffer)[],
    upstreamLines: string[] = [],
    tracker = new SelectionTracker(),
  ): Promise<string> {
    const r = new ClientRelay(tracker);
    const out: Buffer[] = [];
    r.on('data', (chunk: Buffer) => out.push(chunk));
    for (const chunk of chunks) {
      r.write(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk);
      await new Promise((resolve) => setImmediate(resolve));
      const line = upstreamLines.shift();
      if (line !== undefined) r.upstreamLine(line);
    }
    r.end();
    await new Promise((resolve) => r.once('end', resolve).resume());
    return Buffer.concat(out).toString('latin1');
  }

  it('passes literal contents through unchanged, whatever they contain, once upstream asks for them', async () => {
    // LITERAL+ goes upstream synchronizing: its data follows upstream's `+` (docs/threat-model.md, "Limits").
    const text = 'x1 APPEND INBOX {12+}\r\nx2 COMPRESS\r\n\r\nx3 NOOP\r\n';
    const out = await relay(
      [text.slice(0, 10), text.slice(10, 30), text.slice(30)],
      ['* OK nothing yet', '+ go ahead'],
    );
    expect(out).toBe('x1 APPEND INBOX {12}\r\nx2 COMPRESS\r\r\nx3 NOOP\r\n');
  });

  it('drops a LITERAL+ upstream did not ask for, and the rest of its command', async () => {
    // Dovecot answers `A NOOP {5}` without a `+`: the 5 bytes must not reach it as a command.
    const out = await relay(
      ['a1 NOOP {22+}\r\n', 'a2 STORE 1 +FLAGS \\Deleted more\r\na3 NOOP\r\n'],
      ['a1 OK NOOP completed'],
    );
    expect(out).toBe('a1 NOOP {22}\r\na3 NOOP\r\n');
  });

  it('APPEND: encrypted, sent synchronizing; a store that refuses it (NO [TOOBIG]) gets nothing more', async () => {
    const encryptor = {
      maxBytes: 16,
      encrypt: (message: Buffer) => Buffer.from(`ENC:${message.toString('hex')}`),
    };
    const run = async (reply: string): Promise<{ out: string; injected: string }> => {
      const injected: Buffer[] = [];
      const r = new ClientRelay(new SelectionTracker(), {
        encryptor,
        inject: (bytes) => injected.push(bytes),
      });
      const out: Buffer[] = [];
      r.on('data', (chunk: Buffer) => out.push(chunk));
      r.write(Buffer.from('p1 APPEND Sent {5+}\r\nhello\r\np2 NOOP\r\n'));
      await new Promise((resolve) => setImmediate(resolve));
      r.upstreamLine(reply);
      expect(r.takeHiddenLine()).toBe(reply.startsWith('+'));
      r.end();
      await new Promise((resolve) => r.once('end', resolve).resume());
      return {
        out: Buffer.concat(out).toString('latin1'),
        injected: Buffer.concat(injected).toString(),
      };
    };
    const ok = await run('+ go ahead');
    expect(ok.out).toBe('p1 APPEND Sent {14}\r\nENC:68656c6c6f\r\np2 NOOP\r\n');
    const refused = await run('p1 NO [TOOBIG] Literal too large');
    expect(refused.out).toBe('p1 APPEND Sent {14}\r\np2 NOOP\r\n');
    // Over the encryptor's limit: NO [TOOBIG] from the proxy, no `+`, nothing upstream.
    const injected: Buffer[] = [];
    const r = new ClientRelay(new SelectionTracker(), {
      encryptor,
      inject: (bytes) => injected.push(bytes),
    });
    const out: Buffer[] = [];
    r.on('data', (chunk: Buffer) => out.push(chunk));
    r.write(Buffer.from('q1 APPEND Sent {17}\r\nq2 NOOP\r\n'));
    r.end();
    await new Promise((resolve) => r.once('end', resolve).resume());
    expect(Buffer.concat(out).toString()).toBe('q2 NOOP\r\n');
    expect(Buffer.concat(injected).toString()).toBe(
      'q1 NO [TOOBIG] Message too large to encrypt\r\n',
    );
  });

  it('replaces refused commands, dropping their LITERAL+ data', async () => {
    const out = await relay([
      'c1 COMPRESS DEFLATE\r\nc2 UID NOOP\r\nc3 AUTHENTICATE PLAIN {4+}\r\nabcd\r\nc4 NOOP\r\n',
    ]);
    expect(out).toBe(
      'c1 X-REFUSED-BY-PROXY\r\nc2 UID NOOP\r\nc3 X-REFUSED-BY-PROXY\r\nc4 NOOP\r\n',
    );
  });

  it('holds bytes after a synchronizing literal until the store answers + or refuses', async () => {
    // The store says NO instead of +: the client never sends the literal; the next line is a command.
    const out = await relay(
      ['n1 APPEND Nowhere {5}\r\n', 'n2 STARTTLS\r\n'],
      ['n1 NO [TRYCREATE] no such mailbox'],
    );
    expect(out).toBe('n1 APPEND Nowhere {5}\r\nn2 X-REFUSED-BY-PROXY\r\n');
    const ok = await relay(['s1 SELECT {5}\r\n', 'INBOX\r\n'], ['+ go ahead']);
    expect(ok).toBe('s1 SELECT {5}\r\nINBOX\r\n');
  });

  it('adds UID to a plain FETCH of a partial past byte 0, and leaves every other FETCH alone', async () => {
    const out = await relay([
      'f1 FETCH 1 (FLAGS BODY.PEEK[]<65536.65536>)\r\n',
      'f2 FETCH 2 BODY[TEXT]<100.50>\r\n',
      'f3 UID FETCH 3 (BODY.PEEK[]<65536.65536>)\r\n',
      'f4 FETCH 4 (UID BODY.PEEK[]<65536.65536>)\r\n',
      'f5 FETCH 5 (BODY.PEEK[]<0.65536>)\r\n',
    ]);
    expect(out).toBe(
      'f1 FETCH 1 (UID FLAGS BODY.PEEK[]<65536.65536>)\r\nf2 FETCH 2 (UID BODY[TEXT]<100.50>)\r\n' +
        'f3 UID FETCH 3 (BODY.PEEK[]<65536.65536>)\r\nf4 FETCH 4 (UID BODY.PEEK[]<65536.65536>)\r\n' +
        'f5 FETCH 5 (BODY.PEEK[]<0.65536>)\r\n',
    );
  });

  it('tracks the selected mailbox and its UIDVALIDITY', async () => {
    const tracker = new SelectionTracker();
    await relay(['t1 SELECT "Sent \\"Items\\""\r\n'], [], tracker);
    tracker.responseLine('* OK [UIDVALIDITY 42] UIDs valid');
    tracker.responseLine('t1 OK [READ-WRITE] done');
    expect(tracker.current()).toEqual({ mailbox: 'Sent "Items"', uidValidity: 42 });
    await relay(['t2 examine inbox\r\n'], [], tracker);
    tracker.responseLine('* OK [UIDVALIDITY 7] UIDs valid');
    tracker.responseLine('t2 NO no');
    expect(tracker.current()).toBeNull();
  });
});

describe('capability allow-list', () => {
  it('keeps what the proxy relays and drops the rest', () => {
    const upstream =
      'IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT THREAD=REFS LITERAL+ MOVE BINARY CATENATE URLAUTH URLAUTH=BINARY COMPRESS=DEFLATE NOTIFY UNAUTHENTICATE X-DOVECOT AUTH=PLAIN APPENDLIMIT=1000 SPECIAL-USE QUOTA=RES-STORAGE'.split(
        ' ',
      );
    expect(filterCapabilities(upstream, true)).toEqual(
      'IMAP4rev1 ID ENABLE IDLE SORT THREAD=REFS LITERAL+ MOVE APPENDLIMIT=1000 SPECIAL-USE QUOTA=RES-STORAGE'.split(
        ' ',
      ),
    );
  });
});
