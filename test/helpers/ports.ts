import { randomInt } from 'node:crypto';
import { createServer } from 'node:net';

/*
 * Ports for servers a test starts in another process (redis-server, Dovecot, a gateway):
 * chosen here, bound there a moment later. Two things could take such a port in between,
 * and both did in CI runs:
 *  - a client socket: the kernel gives outgoing connections source ports from its
 *    ephemeral range (32768–60999 by default), which is also where `listen(0)` picks;
 *  - another test file running at the same time (Vitest runs two at once).
 * So ports come from below the ephemeral range, from a block of its own for each Vitest
 * worker slot, starting at a random place in the block, never the same twice in a process,
 * and only after a bind on 127.0.0.1 showed them free.
 */
const FIRST_PORT = 20_000;
const BLOCK = 2_000;
const SLOTS = 6;
const slot = (Number(process.env.VITEST_POOL_ID ?? '1') - 1 + SLOTS) % SLOTS;
const blockStart = FIRST_PORT + slot * BLOCK;
let cursor = randomInt(BLOCK);
const handedOut = new Set<number>();

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A TCP port on 127.0.0.1 that was free a moment ago and that no client socket will take. */
export async function freePort(): Promise<number> {
  for (let tried = 0; tried < BLOCK; tried++) {
    const port = blockStart + (cursor++ % BLOCK);
    if (handedOut.has(port)) continue;
    if (await canListen(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free port in ${blockStart}–${blockStart + BLOCK - 1}`);
}
