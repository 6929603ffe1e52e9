/**
 * The raw wire client's `until`, against a real TCP server: matches across reads, a long
 * literal line whose middle looks like a reply to a search that starts inside it (each
 * read is searched from a bounded window before it, so that a 20 MB reply costs linear
 * time), the whole text for a pattern anchored at its start, and the failures it reports.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Wire } from './store-imap.js';

let server: Server | null = null;
const wires: Wire[] = [];

/**
 * A server that greets, then answers each line the client sends with the next of
 * `replies` (null: closes the connection); resolves with its port.
 */
async function serve(replies: (string | null)[]): Promise<number> {
  server = createServer((socket) => {
    const next = [...replies];
    socket.on('error', () => undefined);
    socket.write('* OK test server\r\n');
    socket.on('data', (chunk: Buffer) => {
      const lines = chunk.toString('latin1').split('\n').length - 1;
      for (let i = 0; i < lines; i += 1) {
        const reply = next.shift();
        if (reply === null) socket.end();
        else if (reply !== undefined) socket.write(reply);
      }
    });
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

async function open(port: number): Promise<Wire> {
  const wire = await Wire.open(port);
  wires.push(wire);
  return wire;
}

/** Asks for the server's next reply and waits until (the first read of) it arrived. */
async function step(wire: Wire): Promise<void> {
  const arrived = once(wire.socket, 'data');
  wire.send('next\r\n');
  await arrived;
}

/**
 * A FETCH reply whose literal is one line of 300,000 `a`s after an `x` and ends with
 * ` OK`: no line of it starts with `a`, but a search starting inside the run would match
 * `^a+ OK` there. It comes in several reads (a socket read is at most 64 KiB).
 */
const LONG_LINE = `x${'a'.repeat(300_000)} OK\r\n`;
const LONG_FETCH = `* 1 FETCH (BODY[] {${LONG_LINE.length}}\r\n${LONG_LINE})\r\naa OK done\r\n`;

afterEach(async () => {
  for (const wire of wires.splice(0)) wire.close();
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = null;
});

describe('store-imap Wire.until', () => {
  it('finds a reply line split across reads, returns up to its end and keeps the rest', async () => {
    const wire = await open(await serve(['* 1 EXISTS\r\na O', 'K done\r\n* 2 EXISTS\r\n']));
    const reply = wire.until(/^a OK[^\r\n]*\r\n/m);
    await step(wire);
    await step(wire);
    expect(await reply).toBe('* 1 EXISTS\r\na OK done\r\n');
    expect(wire.pending()).toBe('* 2 EXISTS\r\n');
  });

  it('does not take the middle of a long literal line for a line start', async () => {
    const wire = await open(await serve([LONG_FETCH]));
    const reply = wire.until(/^a+ OK[^\r\n]*\r\n/m);
    await step(wire);
    expect(await reply).toBe(LONG_FETCH);
  });

  it('tests a pattern anchored at the start (no m flag) on everything pending', async () => {
    const wire = await open(await serve([LONG_FETCH]));
    const reply = wire.until(/^\* 1 FETCH [\s\S]*?\r\naa OK done\r\n/);
    await step(wire);
    expect(await reply).toBe(LONG_FETCH);
  });

  it('searches each read with a bounded window: work grows with the reply, not its square', async () => {
    const body = `${'x'.repeat(78)}\r\n`.repeat(50_000);
    const fetch = `* 1 FETCH (BODY[] {${body.length}}\r\n${body})\r\na OK done\r\n`;
    const wire = await open(await serve([fetch]));
    let reads = 0;
    wire.socket.on('data', () => (reads += 1));
    let searched = 0;
    // Counts the characters each search covers (exec from lastIndex to the end).
    class CountingRegExp extends RegExp {
      override exec(text: string): RegExpExecArray | null {
        searched += text.length - (this.global ? this.lastIndex : 0);
        return super.exec(text);
      }
    }
    const reply = wire.until(new CountingRegExp('^a OK[^\\r\\n]*\\r\\n', 'm'));
    await step(wire);
    expect(await reply).toBe(fetch);
    expect(reads).toBeGreaterThan(10);
    // Every character once, plus at most the 64 KiB looked back per read after the first;
    // re-reading all received text on every read is about reads / 2 times the reply.
    expect(searched).toBeGreaterThanOrEqual(fetch.length);
    expect(searched).toBeLessThanOrEqual(fetch.length + reads * 64 * 1024);
  });

  it('rejects after its timeout, with what is pending', async () => {
    const wire = await open(await serve(['* 1 EXISTS\r\n']));
    await step(wire);
    await expect(wire.until(/^a OK/m, 200)).rejects.toThrow(
      /^timeout waiting for \/\^a OK\/m; got "\* 1 EXISTS\\r\\n"$/,
    );
  });

  it('rejects when the connection closes without a match, with what is pending', async () => {
    const wire = await open(await serve(['* BYE going\r\n', null]));
    const reply = wire.until(/^a OK/m);
    wire.send('next\r\nnext\r\n');
    await expect(reply).rejects.toThrow(
      /^connection closed while waiting for \/\^a OK\/m; got "\* BYE going\\r\\n"$/,
    );
  });
});
