/**
 * Scripts the IMAP wire by hand for tests that need exact bytes (refusals, BYE, garbage,
 * a client that vanishes mid-literal): connect, send, and wait for a pattern.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

/**
 * How far before the newest bytes `waitFor` looks for the start of a match. The patterns
 * callers wait for lie within one response line; a match that starts further back than
 * this before the bytes that complete it is not seen (test `received()` for those).
 */
const LOOKBACK = 64 * 1024;

export interface Wire {
  socket: Socket;
  /** Everything received so far (latin1). */
  received(): string;
  send(text: string | Buffer): void;
  /**
   * Resolves with everything received once `pattern` matches it; rejects after `timeoutMs`
   * or on close without a match. Each chunk is tested with the `LOOKBACK` characters before
   * it, from a line start, so waiting costs the same per chunk however much came before
   * (a pattern anchored with `^` but no `m` flag is tested on the whole text).
   */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  closed(): Promise<void>;
  close(): void;
}

/** `localAddress`: another loopback address (127.0.0.2, …) to appear as another client IP. */
export async function openWire(port: number, tls = false, localAddress?: string): Promise<Wire> {
  const from = localAddress === undefined ? {} : { localAddress };
  const socket: Socket = tls
    ? tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...from })
    : netConnect({ host: '127.0.0.1', port, ...from });
  await new Promise<void>((resolve, reject) => {
    socket.once(tls ? 'secureConnect' : 'connect', () => resolve());
    socket.once('error', reject);
  });
  // Appending to one string and then reading it (a regex test, a slice) copies the whole
  // string each time: quadratic over a 20 MB reply. So the pieces are kept apart and joined
  // only when everything is asked for, and waiters see a bounded tail.
  let pieces: string[] = [];
  let length = 0;
  /** The last characters received (at most LOOKBACK). */
  let tail = '';
  let ended = false;
  /** Each is called with the newest piece and what came before it (null: closed). */
  const waiters = new Set<(recent: string | null, whole: boolean) => void>();
  const received = (): string => {
    if (pieces.length > 1) pieces = [pieces.join('')];
    return pieces[0] ?? '';
  };
  socket.on('data', (chunk: Buffer) => {
    const piece = chunk.toString('latin1');
    const whole = tail.length === length;
    pieces.push(piece);
    length += piece.length;
    const before = tail;
    const recent = before + piece;
    tail = recent.length > LOOKBACK ? recent.slice(-LOOKBACK) : recent;
    if (waiters.size === 0) return;
    // From the first line break of the look-back, so that `^` (with `m`) and `\n` patterns
    // never match at a cut in the middle of a line.
    const window = whole ? recent : recent.slice(Math.max(0, before.indexOf('\n')));
    for (const wake of waiters) wake(window, whole);
  });
  socket.on('error', () => undefined);
  const closedPromise = new Promise<void>((resolve) =>
    socket.once('close', () => {
      ended = true;
      for (const wake of waiters) wake(null, false);
      resolve();
    }),
  );
  return {
    socket,
    received,
    send: (data) => void socket.write(data),
    waitFor(pattern, timeoutMs = 10_000) {
      const fromStartOnly = pattern.source.startsWith('^') && !pattern.multiline;
      return new Promise((resolve, reject) => {
        const check = (recent: string | null, whole: boolean): void => {
          const subject = recent !== null && fromStartOnly && !whole ? received() : recent;
          if (subject !== null && pattern.test(subject)) {
            done();
            resolve(received());
          } else if (ended) {
            done();
            reject(
              new Error(`connection closed before ${pattern}; received:\n${tail.slice(-2000)}`),
            );
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`timed out waiting for ${pattern}; received:\n${tail.slice(-2000)}`));
        }, timeoutMs);
        const done = (): void => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check(received(), true);
      });
    },
    closed: () => closedPromise,
    close: () => socket.destroy(),
  };
}
