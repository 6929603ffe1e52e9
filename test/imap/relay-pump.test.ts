/**
 * The relay's upstream → client pump (relay-pump.ts) over real sockets: a store that
 * writes a long FETCH transcript, the pump reading it through SocketInput's `onread`
 * (upstream.ts) into one buffer it reuses whenever the client socket took everything at
 * once, and a client that now and then stops reading (backpressure: writes queue in the
 * socket and that buffer must not be reused). Every byte must arrive as the rewriter
 * made it, and a client that keeps up must be served from a reused buffer.
 */
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { PlanCache } from '../../src/imap/plan-cache.js';
import type { BodyEdit, BodyTransform } from '../../src/imap/ports.js';
import { RelayPump } from '../../src/imap/relay-pump.js';
import { SocketInput } from '../../src/imap/upstream.js';

const MARK = Buffer.from('RCRY');
const REPLACEMENT = Buffer.from('@@@@');

/** Bodies that start with RCRY get bytes 4..7 replaced, as a recryption patches a point. */
const markerTransform: BodyTransform = {
  plan(prefix) {
    if (!Buffer.from(prefix.subarray(0, 4)).equals(MARK))
      return { kind: 'unchanged', reason: 'not-marked' };
    return { kind: 'edits', edits: [{ offset: 4, bytes: REPLACEMENT }] };
  },
  apply(chunk: Uint8Array, chunkOffset: number, edits: readonly BodyEdit[]): Uint8Array {
    const out = Uint8Array.from(chunk);
    for (const edit of edits)
      for (let i = 0; i < edit.bytes.length; i++) {
        const at = edit.offset + i - chunkOffset;
        if (at >= 0 && at < out.length) out[at] = edit.bytes[i]!;
      }
    return out;
  },
};

/** A FETCH transcript and what the client must receive (marked bodies patched). */
function transcript(messages: number): { upstream: Buffer; expected: Buffer } {
  const upstream: Buffer[] = [];
  const expected: Buffer[] = [];
  for (let i = 1; i <= messages; i++) {
    const body = randomBytes(1000 + ((i * 7919) % 90_000));
    if (i % 2 === 0) MARK.copy(body);
    const head = Buffer.from(`* ${i} FETCH (UID ${i} BODY[] {${body.length}}\r\n`);
    const tail = Buffer.from(`)\r\n${i % 10 === 0 ? `* OK still here ${i}\r\n` : ''}`);
    upstream.push(head, body, tail);
    const patched = Buffer.from(body);
    if (i % 2 === 0) REPLACEMENT.copy(patched, 4);
    expected.push(head, patched, tail);
  }
  const done = Buffer.from('A1 OK FETCH completed\r\n');
  return {
    upstream: Buffer.concat([...upstream, done]),
    expected: Buffer.concat([...expected, done]),
  };
}

const servers: Server[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.close();
});

async function listen(
  onConnection: (socket: Socket) => void,
  options: { highWaterMark?: number } = {},
): Promise<number> {
  const server = createServer(options, onConnection);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

interface ClientPace {
  /** The client stops reading for this long after its first read. */
  stallMs: number;
  /** Then pauses 5 ms every this many reads. */
  pauseEvery: number;
  /**
   * The pump's client socket's write buffer. Large: writes queue in the socket and
   * `write` still returns true, so the pump reads on while bytes of earlier reads wait
   * there (their buffer must not be read into again).
   */
  highWaterMark?: number;
}

/** Relays `upstreamBytes` through a pump to a client reading at `pace`. */
async function relay(
  upstreamBytes: Buffer,
  pace: ClientPace,
): Promise<{ received: Buffer; reads: number; allocated: number }> {
  const upstreamPort = await listen((socket) => socket.end(upstreamBytes));
  let accept!: (socket: Socket) => void;
  const accepted = new Promise<Socket>((resolve) => (accept = resolve));
  const clientPort = await listen(
    (socket) => accept(socket),
    pace.highWaterMark === undefined ? {} : { highWaterMark: pace.highWaterMark },
  );
  const client = connect(clientPort, '127.0.0.1');
  const pumpClient = await accepted;
  const input = new SocketInput();
  let reads = 0;
  const upstream = connect({ port: upstreamPort, host: '127.0.0.1', onread: input.onread });
  const pump = new RelayPump(
    {
      transform: markerTransform,
      cache: new PlanCache(),
      selection: () => ({ mailbox: 'INBOX', uidValidity: 1 }),
      fetchPrefix: async () => null,
    },
    upstream,
    pumpClient,
    { recycle: (chunk) => input.recycle(chunk) },
  );
  input.to((chunk) => {
    reads++;
    pump.feed(chunk);
  });
  upstream.once('end', () => pump.upstreamEnd());
  pump.once('end', () => pumpClient.end());
  const received: Buffer[] = [];
  let clientReads = 0;
  client.on('data', (chunk: Buffer) => {
    received.push(chunk);
    clientReads++;
    const pause = clientReads === 1 ? pace.stallMs : clientReads % pace.pauseEvery === 0 ? 5 : 0;
    if (pause > 0) {
      client.pause();
      setTimeout(() => client.resume(), pause);
    }
  });
  await new Promise((resolve) => client.once('end', resolve));
  upstream.destroy();
  return { received: Buffer.concat(received), reads, allocated: input.allocated };
}

describe('relay pump', () => {
  const { upstream, expected } = transcript(300);

  it('a client that keeps up gets every byte as rewritten, read through one reused buffer', async () => {
    const { received, reads, allocated } = await relay(upstream, {
      stallMs: 0,
      pauseEvery: Infinity,
    });
    expect(received.equals(expected)).toBe(true);
    expect(reads).toBeGreaterThan(100);
    expect(allocated).toBeLessThan(reads / 4);
  });

  it('a client that stops now and then (writes waiting in the socket) gets every byte as rewritten', async () => {
    for (const pace of [
      { stallMs: 300, pauseEvery: 7 },
      { stallMs: 300, pauseEvery: 2, highWaterMark: 64 * 1024 * 1024 },
      { stallMs: 100, pauseEvery: 3, highWaterMark: 256 * 1024 },
    ]) {
      const { received } = await relay(upstream, pace);
      expect(received.length, JSON.stringify(pace)).toBe(expected.length);
      expect(received.equals(expected), JSON.stringify(pace)).toBe(true);
    }
  });
});
