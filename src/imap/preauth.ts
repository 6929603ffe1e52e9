/**
 * Reads the commands a client sends before login, which the proxy answers itself
 * (CAPABILITY, NOOP, LOGOUT, STARTTLS, ID, LOGIN, AUTHENTICATE): tag, name and
 * arguments (atoms, quoted strings, literals — synchronizing or LITERAL+), framed by
 * the shared framer (src/imap-wire/framer.ts). Bounded and linear: nothing a client
 * sends before it has logged in makes the proxy hold more than one command of
 * PREAUTH_COMMAND_CAP bytes, and no byte is copied more than once.
 */
import { CommandFramer } from '../imap-wire/framer.js';

/**
 * Large enough for the largest RFC 2971 ID (30 field-value pairs, fields ≤ 30 octets,
 * values ≤ 1024 octets: about 32 KB quoted, twice that if every octet is escaped).
 */
export const PREAUTH_COMMAND_CAP = 64 * 1024;

/** What `nextLine` returns for an AUTHENTICATE response over the cap (read and dropped). */
export const PREAUTH_LINE_TOO_LONG = Symbol('line too long');

export interface PreauthCommand {
  tag: string;
  name: string;
  args: Buffer[];
}

export type PreauthEvent =
  | { type: 'command'; command: PreauthCommand }
  /** A synchronizing literal was announced: answer `+` so the client sends it. */
  | { type: 'continue' }
  | { type: 'bad'; tag: string; text: string }
  | { type: 'too-long' };

export class PreauthReader {
  private readonly framer = new CommandFramer({
    maxLineLength: PREAUTH_COMMAND_CAP,
    maxLiteralSize: PREAUTH_COMMAND_CAP,
  });
  private args: Buffer[] = [];
  private size = 0;
  private literal: Buffer[] | null = null;
  private expectingLine = false;
  private overflowed = false;

  push(bytes: Buffer): void {
    this.framer.push(bytes);
  }

  /** Bytes held and not yet consumed. */
  get pending(): number {
    return this.framer.pending;
  }

  /** One raw line (an AUTHENTICATE response), or null until it is complete. */
  nextLine(): string | typeof PREAUTH_LINE_TOO_LONG | null {
    if (!this.expectingLine) {
      this.framer.expectLine();
      this.expectingLine = true;
    }
    const event = this.framer.next();
    if (event === null) return null;
    this.expectingLine = false;
    if (event.type === 'raw-line') return event.line.toString('latin1');
    return PREAUTH_LINE_TOO_LONG;
  }

  /** The next event the held bytes complete, or null. Call until null after each push. */
  next(): PreauthEvent | null {
    if (this.overflowed) return null;
    const event = this.step();
    if (event?.type === 'too-long') {
      // Nothing more is read from this client: the caller ends the session.
      this.overflowed = true;
      this.framer.takeRest();
    }
    return event;
  }

  private step(): PreauthEvent | null {
    for (;;) {
      const event = this.framer.next();
      // Before login there is no waiting for the end of an over-long line.
      if (event === null) return this.framer.overLong ? { type: 'too-long' } : null;
      if (event.type === 'literal') {
        this.literal!.push(event.data);
        if (event.last) {
          this.args.push(Buffer.concat(this.literal!));
          this.literal = null;
        }
        continue;
      }
      if (event.type !== 'line') return { type: 'too-long' };
      if (event.first) this.reset();
      this.size += event.line.length + 2;
      if (this.size > PREAUTH_COMMAND_CAP) return { type: 'too-long' };
      const announced = event.literal;
      const text = event.line.toString(
        'latin1',
        0,
        announced === null ? event.line.length : event.line.lastIndexOf(0x7b),
      );
      const parsed = tokenize(text);
      if (parsed === null) {
        const tag = event.first ? (text.split(' ')[0] ?? '*') : '*';
        this.reset();
        if (announced !== null) {
          // A LITERAL+ of a broken command is on its way: it cannot be skipped safely.
          if (!announced.sync) return { type: 'too-long' };
          this.framer.refuse();
        }
        return { type: 'bad', tag, text: 'Syntax error' };
      }
      this.args.push(...parsed);
      if (announced !== null) {
        if (this.size + announced.size > PREAUTH_COMMAND_CAP) return { type: 'too-long' };
        this.size += announced.size;
        this.framer.accept();
        this.literal = [];
        if (announced.size === 0) {
          this.args.push(Buffer.alloc(0));
          this.literal = null;
        }
        if (announced.sync) return { type: 'continue' };
        continue;
      }
      const [tag, name, ...args] = this.args;
      this.reset();
      if (
        tag === undefined ||
        name === undefined ||
        !/^[\x21-\x7e]+$/.test(tag.toString('latin1'))
      ) {
        return { type: 'bad', tag: '*', text: 'Missing tag or command' };
      }
      return {
        type: 'command',
        command: { tag: tag.toString('latin1'), name: name.toString('latin1').toUpperCase(), args },
      };
    }
  }

  /** Bytes received after the last complete command (e.g. pipelined after STARTTLS). */
  takeRest(): Buffer {
    return this.framer.takeRest();
  }

  private reset(): void {
    this.args = [];
    this.size = 0;
  }
}

function tokenize(line: string): Buffer[] | null {
  const tokens: Buffer[] = [];
  let i = 0;
  while (i < line.length) {
    if (line[i] === ' ') {
      i++;
      continue;
    }
    if (line[i] === '"') {
      let value = '';
      let j = i + 1;
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === '\\') j++;
        value += line[j] ?? '';
      }
      if (j >= line.length) return null;
      tokens.push(Buffer.from(value, 'latin1'));
      i = j + 1;
      continue;
    }
    const end = line.indexOf(' ', i);
    const atom = line.slice(i, end === -1 ? line.length : end);
    tokens.push(Buffer.from(atom, 'latin1'));
    i = end === -1 ? line.length : end + 1;
  }
  return tokens;
}
