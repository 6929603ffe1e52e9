/**
 * The DNS client (src/dns/client.ts): against a real unbound, an answer too large for
 * one UDP datagram comes back truncated and is asked again over TCP; and against
 * hand-made bad servers, a datagram that is not DNS or carries another id is ignored
 * (the real answer still counts, or the question times out), and a TCP answer cut short
 * is an error, never a hang.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server } from 'node:net';
import packet from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DnsError, queryDns } from '../../src/dns/index.js';
import { DnssecResolver } from '../helpers/dnssec-resolver.js';
import { freePort } from '../helpers/ports.js';

let dns: DnssecResolver;
const LONG = 'x'.repeat(200);

beforeAll(async () => {
  dns = await DnssecResolver.start([
    {
      name: 'big.test',
      signed: true,
      records: Array.from({ length: 20 }, (_, i) => `many IN TXT "${i} ${LONG}"`),
    },
  ]);
}, 120_000);

afterAll(async () => {
  await dns?.stop();
});

/** A UDP "server" on a free port that answers each question with what `reply` makes. */
async function udpServer(
  reply: (question: Buffer) => Buffer[],
): Promise<{ port: number; socket: UdpSocket }> {
  const port = await freePort();
  const socket = createSocket('udp4');
  socket.on('message', (message, from) => {
    for (const datagram of reply(message)) socket.send(datagram, from.port, from.address);
  });
  await new Promise<void>((resolve) => socket.bind(port, '127.0.0.1', () => resolve()));
  return { port, socket };
}

function answerTo(question: Buffer, id = packet.decode(question).id): Buffer {
  const asked = packet.decode(question).questions![0]!;
  return packet.encode({
    type: 'response',
    id: id ?? 0,
    flags: packet.AUTHENTIC_DATA | packet.RECURSION_AVAILABLE,
    questions: [asked],
    answers: [{ type: 'A', name: asked.name, ttl: 60, data: '192.0.2.7' }],
  });
}

describe('DNS client', () => {
  it('asks again over TCP when the UDP answer is truncated (real unbound)', async () => {
    const reply = await queryDns(
      { host: '127.0.0.1', port: dns.port },
      'many.big.test',
      'TXT',
      5_000,
    );
    expect(reply.rcode).toBe('NOERROR');
    expect(reply.authenticated).toBe(true);
    expect(reply.records).toHaveLength(20);
    expect(reply.records.map((r) => (r.type === 'TXT' ? r.text : '')).sort()[0]).toBe(`0 ${LONG}`);
  }, 30_000);

  it('ignores a datagram that is not DNS, or answers another id, and takes the real answer', async () => {
    const { port, socket } = await udpServer((question) => [
      Buffer.from('not dns at all'),
      answerTo(question, (packet.decode(question).id! + 1) % 65_536),
      answerTo(question),
    ]);
    try {
      const reply = await queryDns({ host: '127.0.0.1', port }, 'a.example', 'A', 5_000);
      expect(reply.records).toEqual([
        { type: 'A', address: '192.0.2.7', name: 'a.example', ttl: 60 },
      ]);
      expect(reply.authenticated).toBe(true);
    } finally {
      socket.close();
    }
  });

  it('times out when only wrong answers come', async () => {
    const { port, socket } = await udpServer((question) => [
      answerTo(question, (packet.decode(question).id! + 1) % 65_536),
    ]);
    try {
      await expect(queryDns({ host: '127.0.0.1', port }, 'a.example', 'A', 500)).rejects.toThrow(
        DnsError,
      );
    } finally {
      socket.close();
    }
  });

  it('fails (does not hang) on a TCP answer cut short', async () => {
    // UDP says "truncated"; TCP announces 500 bytes and closes after 3.
    const port = await freePort();
    const udp = createSocket('udp4');
    udp.on('message', (message, from) => {
      const decoded = packet.decode(message);
      udp.send(
        packet.encode({
          type: 'response',
          id: decoded.id ?? 0,
          flags: packet.TRUNCATED_RESPONSE,
          questions: decoded.questions ?? [],
        }),
        from.port,
        from.address,
      );
    });
    await new Promise<void>((resolve) => udp.bind(port, '127.0.0.1', () => resolve()));
    const tcp: Server = createServer((socket) => socket.end(Buffer.from([0x01, 0xf4, 0, 0, 0])));
    await new Promise<void>((resolve) => tcp.listen(port, '127.0.0.1', () => resolve()));
    try {
      await expect(queryDns({ host: '127.0.0.1', port }, 'a.example', 'A', 5_000)).rejects.toThrow(
        /closed before a whole reply/,
      );
    } finally {
      udp.close();
      tcp.close();
    }
  });
});
