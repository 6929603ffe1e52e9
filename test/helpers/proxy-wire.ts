/**
 * Scripts the IMAP wire by hand for tests that need exact bytes (refusals, BYE, garbage,
 * a client that vanishes mid-literal): connect, send, and wait for a pattern.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

export interface Wire {
  socket: Socket;
  /** Everything received so far (latin1). */
  received(): string;
  send(text: string | Buffer): void;
  /** Resolves with everything received once `pattern` matches it; rejects after `timeoutMs` or on close without a match. */
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
  let text = '';
  let ended = false;
  const waiters = new Set<() => void>();
  socket.on('data', (chunk: Buffer) => {
    text += chunk.toString('latin1');
    for (const wake of waiters) wake();
  });
  socket.on('error', () => undefined);
  const closedPromise = new Promise<void>((resolve) =>
    socket.once('close', () => {
      ended = true;
      for (const wake of waiters) wake();
      resolve();
    }),
  );
  return {
    socket,
    received: () => text,
    send: (data) => void socket.write(data),
    waitFor(pattern, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        // Large transfers: look only at what arrived since the last check (plus an overlap),
        // so that waiting for the end of a 20 MB literal stays linear.
        let checked = 0;
        const check = (): void => {
          const from = text.length > 1 << 20 ? Math.max(0, checked - 65536) : 0;
          checked = text.length;
          if (pattern.test(from === 0 ? text : text.slice(from))) {
            done();
            resolve(text);
          } else if (ended) {
            done();
            reject(
              new Error(`connection closed before ${pattern}; received:\n${text.slice(-2000)}`),
            );
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`timed out waiting for ${pattern}; received:\n${text.slice(-2000)}`));
        }, timeoutMs);
        const done = (): void => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    closed: () => closedPromise,
    close: () => socket.destroy(),
  };
}
