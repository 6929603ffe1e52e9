/**
 * The wire helper's `waitFor`, against a real TCP server: matches across reads (each read
 * is searched with a bounded window of the bytes before it, so that a 20 MB reply costs
 * linear time; the window's edge is tested here) and the failures it reports.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { openWire } from './proxy-wire.js';

let server: Server | null = null;

/** A server that hands each connection to `script`; resolves with its port. */
async function serve(script: (socket: Socket) => void): Promise<number> {
  server = createServer(script);
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** Writes `pieces` one read apart (the next after a short pause). */
async function trickle(socket: Socket, pieces: (string | Buffer)[]): Promise<void> {
  for (const piece of pieces) {
    socket.write(piece);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

afterEach(async () => {
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = null;
});

describe('proxy-wire waitFor', () => {
  it('finds a match split across reads and resolves with everything received', async () => {
    const port = await serve((socket) => void trickle(socket, ['* OK hi\r\nA1 O', 'K done\r\n']));
    const wire = await openWire(port);
    try {
      const text = await wire.waitFor(/\nA1 OK [^\r\n]*\r\n/);
      expect(text).toBe('* OK hi\r\nA1 OK done\r\n');
      expect(wire.received()).toBe(text);
    } finally {
      wire.close();
    }
  });

  it('finds a line that ends past 64 KiB of earlier bytes, and a start-anchored pattern over all of them', async () => {
    const filler = `${'x'.repeat(1000)}\r\n`.repeat(200);
    const port = await serve(
      (socket) => void trickle(socket, ['* OK hi\r\n', filler, 'A2 O', 'K done\r\n']),
    );
    const wire = await openWire(port);
    try {
      await wire.waitFor(/\nA2 OK done\r\n/);
      // `^` without the m flag: only the whole text can match (no window starts a match).
      const text = await wire.waitFor(/^\* OK hi\r\n[\s\S]*\nA2 OK/);
      expect(text.length).toBe('* OK hi\r\n'.length + filler.length + 'A2 OK done\r\n'.length);
    } finally {
      wire.close();
    }
  });

  it('rejects, with the last bytes received, when the connection closes without a match', async () => {
    const port = await serve(
      (socket) => void trickle(socket, ['* OK hi\r\n']).then(() => socket.end()),
    );
    const wire = await openWire(port);
    await expect(wire.waitFor(/\nA3 OK/)).rejects.toThrow(/connection closed before .*\n\* OK hi/);
  });

  it('rejects after its timeout', async () => {
    const port = await serve((socket) => void socket.write('* OK hi\r\n'));
    const wire = await openWire(port);
    try {
      await expect(wire.waitFor(/\nA4 OK/, 200)).rejects.toThrow(/timed out waiting for/);
    } finally {
      wire.close();
    }
  });
});
