/**
 * The proxy's client relay in front of the embedded store's command input, in one
 * process: the real ClientRelay (src/imap/client-relay.ts) writes into the real
 * CommandInput (src/store/imap/input.ts) over a PassThrough, and a small command loop
 * answers as the store's connection.ts does (`+` for a synchronizing literal, `+ idling`
 * then one line for IDLE, a tagged reply for everything else). Both sides report where
 * each command starts, so a test can check that they agree on every boundary.
 * The loop stands in for dispatch (no mailbox): what is compared is framing, not effects.
 */
import { PassThrough } from 'node:stream';
import { ArchiveReadOnly } from '../../src/imap/archive.js';
import { ClientRelay } from '../../src/imap/client-relay.js';
import { SelectionTracker } from '../../src/imap/selection.js';
import { tagOf } from '../../src/imap-wire/framer.js';
import { CommandInput, type InputLimits } from '../../src/store/imap/input.js';

export interface PairOptions {
  readOnly?: boolean;
  /** Encrypts APPENDs as hex behind `ENC:` (so plaintext never survives it). */
  encrypt?: boolean;
  limits?: Partial<InputLimits>;
}

export interface PairResult {
  /** First line of every command the relay sent upstream. */
  relayCommands: string[];
  /** First line of every command the store read (run or refused with NO). */
  storeCommands: string[];
  /** Whole commands the store ran (lines and literals). */
  executed: Buffer[];
  /** The store stopped reading (BYE). */
  storeStopped: boolean;
  /** The relay ended the session (BYE). */
  relayFatal: string | null;
}

const ENCRYPTOR = {
  maxBytes: 48,
  encrypt: (message: Buffer): Buffer =>
    Buffer.from(`ENC:${Buffer.from(message).toString('hex')}`, 'latin1'),
};

function head(bytes: Buffer): string {
  const crlf = bytes.indexOf('\r\n');
  return bytes.toString('latin1', 0, crlf === -1 ? bytes.length : crlf);
}

export async function runPair(chunks: Buffer[], options: PairOptions = {}): Promise<PairResult> {
  const result: PairResult = {
    relayCommands: [],
    storeCommands: [],
    executed: [],
    storeStopped: false,
    relayFatal: null,
  };
  let progress = 0;
  const wire = new PassThrough();
  const relay = new ClientRelay(new SelectionTracker(), {
    ...(options.readOnly === true ? { readOnly: new ArchiveReadOnly() } : {}),
    ...(options.encrypt === true ? { encryptor: ENCRYPTOR } : {}),
    onCommand: (line) => result.relayCommands.push(line.toString('latin1')),
    onFatal: (text) => {
      result.relayFatal = text;
    },
  });
  relay.on('data', (chunk: Buffer) => {
    progress++;
    wire.write(chunk);
  });
  const reply = (line: string): void => {
    progress++;
    relay.upstreamLine(line);
  };
  const limits: InputLimits = {
    maxLineLength: 64 * 1024,
    maxLiteralSize: 64,
    maxCommandSize: 256,
    ...options.limits,
  };
  const input = new CommandInput(wire, limits, async () => reply('+ go ahead'));
  const loop = (async () => {
    for (;;) {
      const r = await input.readCommand();
      progress++;
      if (r.kind === 'end') return;
      if (r.kind === 'line-too-long') {
        result.storeCommands.push('<line too long>');
        if (!r.resync) return void (result.storeStopped = true);
        reply(`${r.tag ?? '*'} BAD [TOOBIG] Command line too long`);
        continue;
      }
      if (r.kind === 'literal-too-large') {
        result.storeCommands.push(head(r.line));
        if (r.nonSync) return void (result.storeStopped = true);
        reply(`${r.tag ?? '*'} NO [TOOBIG] Literal too large`);
        continue;
      }
      result.storeCommands.push(head(r.bytes));
      result.executed.push(r.bytes);
      const tag = tagOf(r.bytes) ?? '*';
      if (head(r.bytes).toUpperCase() === `${tag.toUpperCase()} IDLE`) {
        reply('+ idling');
        const done = await input.readLine();
        if (done === null) return;
        reply(
          done !== 'too-long' && done.toString('latin1').toUpperCase() === 'DONE'
            ? `${tag} OK Idle done`
            : `${tag} BAD Expected DONE`,
        );
        continue;
      }
      reply(`${tag} OK done`);
    }
  })();
  for (const chunk of chunks) {
    relay.write(chunk);
    await new Promise((resolve) => setImmediate(resolve));
  }
  // Everything is in-process: settled once nothing moves for a few turns of the loop.
  let still = 0;
  let last = -1;
  while (still < 4) {
    await new Promise((resolve) => setImmediate(resolve));
    if (progress === last) still++;
    else {
      still = 0;
      last = progress;
    }
  }
  wire.end();
  await loop;
  relay.destroy();
  return result;
}

/** Commands (after UID) that change a mailbox: none may run in a read-only session. */
export const WRITE_COMMANDS = new Set([
  'STORE',
  'EXPUNGE',
  'APPEND',
  'COPY',
  'MOVE',
  'CREATE',
  'DELETE',
  'RENAME',
  'SUBSCRIBE',
  'UNSUBSCRIBE',
  'SETACL',
  'DELETEACL',
  'SETMETADATA',
  'SETQUOTA',
  'REPLACE',
]);

/** The command name of a command's bytes, after UID. */
export function commandName(bytes: Buffer): string {
  const words = head(bytes).split(' ');
  const name = (words[1] ?? '').toUpperCase();
  return name === 'UID' ? (words[2] ?? '').toUpperCase() : name;
}
