/**
 * src/smtp/data-stream.ts against the smtp-server DATA parser it replaces: both parsers
 * are fed the same SMTP input — commands, DATA, message bodies full of line-start dots,
 * escape dots, terminators, bare LFs and CRs — split into the same chunks, and must
 * produce the same messages (byte for byte), the same byte counts, the same commands
 * after each message and the same unfinished message at the end. Then the replacement
 * is shown to be installed in the MX and the store's LMTP by sending through them.
 */
import fc from 'fast-check';
import { SMTPServer } from 'smtp-server';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { describe, expect, it } from 'vitest';
import { type DataParser, FastDataSmtpServer, feedDataStream } from '../../src/smtp/data-stream.js';
import { SmtpWire } from '../helpers/smtp-wire.js';

interface Transcript {
  commands: string[];
  messages: { bytes: string; counted: number }[];
  /** The message still open when the input ended (what was emitted of it). */
  open: string | null;
}

interface Parser extends DataParser, NodeJS.WritableStream {
  oncommand(command: Buffer, callback: () => void): void;
  startDataMode(max?: number): NodeJS.ReadableStream & { byteLength: number };
  continue(): void;
}

async function parse(input: Buffer, cuts: number[], fast: boolean): Promise<Transcript> {
  const parser = new (SMTPStream as new () => Parser)();
  if (fast) parser._feedDataStream = feedDataStream;
  const transcript: Transcript = { commands: [], messages: [], open: null };
  parser.oncommand = (command, callback) => {
    const line = command.toString('latin1');
    transcript.commands.push(line);
    if (/^DATA$/i.test(line)) {
      const parts: Buffer[] = [];
      const stream = parser.startDataMode();
      transcript.open = '';
      stream.on('data', (chunk: Buffer) => {
        parts.push(chunk);
        transcript.open = Buffer.concat(parts).toString('latin1');
      });
      stream.on('end', () => {
        transcript.open = null;
        transcript.messages.push({
          bytes: Buffer.concat(parts).toString('latin1'),
          counted: stream.byteLength,
        });
        // smtp-server answers, then continues with what was pipelined after the message.
        setImmediate(() => parser.continue());
      });
      // As a connection does (it answers 354 first): continuing synchronously into the
      // next message's end would re-enter smtp-server's continue(), which loses its callback.
      setImmediate(callback);
      return;
    }
    callback();
  };
  const ends = [...new Set(cuts.map((cut) => cut % (input.length + 1)))].sort((a, b) => a - b);
  let from = 0;
  for (const end of [...ends, input.length]) {
    if (end > from) parser.write(input.subarray(from, end));
    from = Math.max(from, end);
  }
  parser.end();
  await new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${fast ? 'fast' : 'smtp-server'} parser never finished`)),
      30_000,
    );
    parser.once('finish', () => resolve(clearTimeout(timer)));
  });
  // Escape dots and continue() take event-loop turns: let them all run.
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
  return transcript;
}

// Pieces of a body chosen to hit every branch: line-start dots, escapes, terminators.
const token = fc.oneof(
  fc.constantFrom(
    '\r\n',
    '\n',
    '\r',
    '.',
    '..',
    '...',
    '\r\n.',
    '\r\n..',
    '\r\n.\r\n',
    '\r\n..\r\n',
    '\n.\r\n',
    '\n..',
    '.\r\n',
    'a',
    ' ',
  ),
  fc.integer({ min: 1, max: 300 }).map((n) => 'x'.repeat(n)),
);
const body = fc.array(token, { maxLength: 60 }).map((parts) => parts.join(''));
const input = fc
  .array(fc.record({ body, end: fc.constantFrom('\r\n.\r\n', '\r\n.\r\n', '', '.\r\n') }), {
    minLength: 1,
    maxLength: 3,
  })
  .map((transactions) =>
    Buffer.from(
      transactions.map((t) => `NOOP\r\nDATA\r\n${t.body}${t.end}QUIT\r\n`).join(''),
      'latin1',
    ),
  );

describe('smtp DATA parser (Buffer.indexOf scan)', () => {
  it('gives what smtp-server gives for random input at random chunkings', async () => {
    await fc.assert(
      fc.asyncProperty(
        input,
        fc.array(fc.integer({ min: 0, max: 100_000 }), { maxLength: 12 }),
        async (bytes, cuts) => {
          expect(await parse(bytes, cuts, true)).toEqual(await parse(bytes, cuts, false));
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('gives what smtp-server gives at every single split point of tricky input', async () => {
    const cases = [
      'DATA\r\n.\r\nNOOP\r\n',
      'DATA\r\n..\r\n.\r\nNOOP\r\n',
      'DATA\r\n\n..\r\n.\r\nNOOP\r\n',
      `DATA\r\n${'y'.repeat(100)}\r\n..x\r\n...\r\n.\n.\r\n.\r\nNOOP\r\n`,
      `DATA\r\n${'y'.repeat(70)}\r\n..\r\n..\r\n..\r\n.\r\nRSET\r\n`,
      `DATA\r\n${'z'.repeat(200)}\n.\r\n\r\n.\r\n${'q'.repeat(90)}\r\n`,
    ];
    for (const text of cases) {
      const bytes = Buffer.from(text, 'latin1');
      for (let cut = 0; cut <= bytes.length; cut++) {
        for (const second of [cut + 1, cut + 3, cut + 70]) {
          expect(await parse(bytes, [cut, second], true)).toEqual(
            await parse(bytes, [cut, second], false),
          );
        }
      }
    }
  });

  it('unstuffs a large message in the same bytes, whatever the chunk sizes', async () => {
    const line = (n: number): string => (n % 7 === 0 ? `..dot ${n}\r\n` : `line ${n}\r\n`);
    const text = Array.from({ length: 5000 }, (_, n) => line(n)).join('');
    const bytes = Buffer.from(`DATA\r\n${text}.\r\nQUIT\r\n`, 'latin1');
    const cuts = Array.from({ length: 12 }, (_, i) => i * 4093 + (i % 5));
    const fast = await parse(bytes, cuts, true);
    expect(fast).toEqual(await parse(bytes, cuts, false));
    expect(fast.messages[0]!.bytes).toBe(text.replace(/^\.\./gm, '.'));
  });

  it('is what a FastDataSmtpServer connection parses DATA with, and the parser it makes after STARTTLS', async () => {
    const received: string[] = [];
    type Connection = { _parser: DataParser | false; _createParser(): DataParser };
    const installed: boolean[] = [];
    const server: FastDataSmtpServer = new FastDataSmtpServer({
      authOptional: true,
      hideSTARTTLS: true,
      logger: false,
      disableReverseLookup: true,
      onData(stream, _session, callback) {
        for (const connection of server.connections as Set<Connection>) {
          installed.push(
            connection._parser && connection._parser._feedDataStream === feedDataStream,
          );
          installed.push(connection._createParser()._feedDataStream === feedDataStream);
        }
        const parts: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => parts.push(chunk));
        stream.on('end', () => {
          received.push(Buffer.concat(parts).toString('latin1'));
          callback();
        });
      },
    });
    expect(server).toBeInstanceOf(SMTPServer);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.server.address() as { port: number }).port;
    const wire = await SmtpWire.open(port);
    try {
      await wire.reply(10_000);
      await wire.command('EHLO test.example');
      await wire.command('MAIL FROM:<a@example.org>');
      await wire.command('RCPT TO:<b@example.org>');
      expect(await wire.command('DATA')).toMatch(/^354/);
      wire.write(`Subject: t\r\n\r\n..one\r\n${'w'.repeat(5000)}\r\n..\r\n.\r\n`);
      expect(await wire.reply(10_000)).toMatch(/^250/);
    } finally {
      wire.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    expect(received).toEqual([`Subject: t\r\n\r\n.one\r\n${'w'.repeat(5000)}\r\n.\r\n`]);
    expect(installed).toEqual([true, true]);
  });
});
