/**
 * Reads the commands a client sends before login, which the proxy answers itself
 * (CAPABILITY, NOOP, LOGOUT, STARTTLS, ID, LOGIN, AUTHENTICATE): tag, name and
 * arguments (atoms, quoted strings, literals — synchronizing or LITERAL+). Bounded:
 * nothing a client sends before it has logged in may make the proxy hold much.
 */
export const PREAUTH_COMMAND_CAP = 8 * 1024;

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
  private buffer: Buffer = Buffer.alloc(0);
  private args: Buffer[] = [];
  private size = 0;
  private literal: number | null = null;
  /** The line being read continues a command after a literal. */
  private continuing = false;
  private overflowed = false;

  push(bytes: Buffer): void {
    this.buffer = this.buffer.length === 0 ? bytes : Buffer.concat([this.buffer, bytes]);
  }

  /** Bytes held and not yet consumed. */
  get pending(): number {
    return this.buffer.length;
  }

  /** One raw line (an AUTHENTICATE response), or null until it is complete. */
  nextLine(): string | null {
    const eol = this.buffer.indexOf(10);
    if (eol === -1) return null;
    const line = this.buffer.subarray(0, eol).toString('latin1').replace(/\r$/, '');
    this.buffer = this.buffer.subarray(eol + 1);
    return line;
  }

  /** The next event the held bytes complete, or null. Call until null after each push. */
  next(): PreauthEvent | null {
    if (this.overflowed) return null;
    const event = this.step();
    if (event?.type === 'too-long') {
      // Nothing more is read from this client: the caller ends the session.
      this.overflowed = true;
      this.buffer = Buffer.alloc(0);
    }
    return event;
  }

  private step(): PreauthEvent | null {
    for (;;) {
      if (this.literal !== null) {
        if (this.buffer.length < this.literal) return null;
        this.args.push(Buffer.from(this.buffer.subarray(0, this.literal)));
        this.buffer = this.buffer.subarray(this.literal);
        this.literal = null;
        continue;
      }
      const eol = this.buffer.indexOf(10);
      if (eol === -1) {
        if (this.size + this.buffer.length > PREAUTH_COMMAND_CAP) return { type: 'too-long' };
        return null;
      }
      const line = this.buffer.subarray(0, eol).toString('latin1').replace(/\r$/, '');
      this.buffer = this.buffer.subarray(eol + 1);
      this.size += line.length + 2;
      if (this.size > PREAUTH_COMMAND_CAP) return { type: 'too-long' };
      const parsed = tokenize(line);
      if (parsed === null) {
        const tag = this.continuing ? '*' : (line.split(' ')[0] ?? '*');
        this.reset();
        return { type: 'bad', tag, text: 'Syntax error' };
      }
      this.args.push(...parsed.tokens);
      if (parsed.literal !== null) {
        if (this.size + parsed.literal.length > PREAUTH_COMMAND_CAP) return { type: 'too-long' };
        this.size += parsed.literal.length;
        this.literal = parsed.literal.length;
        this.continuing = true;
        if (parsed.literal.synchronizing) return { type: 'continue' };
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
    const rest = this.buffer;
    this.buffer = Buffer.alloc(0);
    return rest;
  }

  private reset(): void {
    this.args = [];
    this.size = 0;
    this.continuing = false;
  }
}

function tokenize(
  line: string,
): { tokens: Buffer[]; literal: { length: number; synchronizing: boolean } | null } | null {
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
    const literal = /^\{(\d{1,6})(\+?)\}$/.exec(atom);
    if (literal !== null && end === -1) {
      return { tokens, literal: { length: Number(literal[1]), synchronizing: literal[2] !== '+' } };
    }
    tokens.push(Buffer.from(atom, 'latin1'));
    i = end === -1 ? line.length : end + 1;
  }
  return { tokens, literal: null };
}
