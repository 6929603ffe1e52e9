import { parseCommand, TaggedParseError } from './commands/parse.js';
import { BadCharsetError } from './commands/search.js';
import { execute } from './dispatch.js';
import { ParseError } from './errors.js';
import type { Session } from './session.js';

export interface ConnectionLimits {
  /** After this many BAD replies the connection is closed with BYE. */
  maxBadCommands: number;
  /** Commands per second one connection may send; faster clients are slowed down, not refused. */
  commandsPerSecond: number;
}

/** Simple token bucket: waits instead of failing so well-behaved bursts still work. */
class Throttle {
  private tokens: number;
  private last = Date.now();
  constructor(private readonly rate: number) {
    this.tokens = rate;
  }
  async take(): Promise<void> {
    const now = Date.now();
    this.tokens = Math.min(this.rate, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return;
    }
    const wait = Math.ceil(((1 - this.tokens) / this.rate) * 1000);
    await new Promise((r) => setTimeout(r, wait));
    this.tokens = 0;
    this.last = Date.now();
  }
}

/** Reads, parses and runs commands until LOGOUT, EOF, or a BYE. */
export async function runConnection(s: Session, limits: ConnectionLimits): Promise<void> {
  const out = s.out;
  out.line(`* OK [CAPABILITY ${s.capabilities().join(' ')}] recrypt store ready`);
  await out.flush();
  const throttle = new Throttle(limits.commandsPerSecond);
  let bad = 0;
  while (s.state !== 'logout' && !out.isClosed) {
    const input = await s.input.readCommand();
    if (input.kind === 'end') break;
    await throttle.take();
    let status: string;
    if (input.kind === 'line-too-long') {
      if (!input.resync) {
        // Part of the command is gone, or a LITERAL+ is in flight: where the next command
        // starts is unknown, so nothing more is read (docs/threat-model.md, "Limits").
        out.line('* BYE [TOOBIG] Command line too long');
        break;
      }
      out.line(`${input.tag ?? '*'} BAD [TOOBIG] Command line too long`);
      status = 'BAD';
    } else if (input.kind === 'literal-too-large') {
      if (input.nonSync) {
        // The client is already sending the data (RFC 7888 §4): the stream cannot be resynchronised.
        out.line('* BYE [TOOBIG] Literal too large');
        break;
      }
      out.line(`${input.tag ?? '*'} NO [TOOBIG] Literal too large`);
      status = 'NO';
    } else {
      status = await parseAndRun(s, input.bytes);
    }
    if (status === 'BAD') bad++;
    if (status === 'BYE') break;
    if (bad >= limits.maxBadCommands) {
      out.line('* BYE Too many invalid commands');
      break;
    }
    await out.flush();
  }
  await out.end().catch(() => undefined);
  await s.close();
}

async function parseAndRun(s: Session, bytes: Buffer): Promise<string> {
  try {
    const cmd = parseCommand(bytes);
    const status = await execute(s, cmd);
    if (cmd.name === 'LOGOUT' && status === 'OK') return 'BYE';
    return status;
  } catch (err) {
    // Unparsed: the name may be anything the client typed, so it is not a label value.
    const count = (result: 'NO' | 'BAD') =>
      s.config.metrics?.commands.inc({ command: 'unparsed', result });
    if (err instanceof TaggedParseError) {
      if (err.inner instanceof BadCharsetError) {
        s.out.line(`${err.tag} NO [BADCHARSET (UTF-8 US-ASCII)] ${err.message}`);
        count('NO');
        return 'NO';
      }
      s.out.line(`${err.tag} BAD ${err.message}`);
      count('BAD');
      return 'BAD';
    }
    if (err instanceof ParseError) {
      s.out.line(`* BAD ${err.message}`);
      count('BAD');
      return 'BAD';
    }
    throw err;
  }
}
