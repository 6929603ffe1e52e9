/**
 * One DNS question to one recursive resolver, asked so that the answer says whether the
 * resolver validated it with DNSSEC: EDNS0 with the DO bit and the AD bit set in the
 * query (RFC 6840 §5.7), the AD bit read from the reply. node:dns cannot do this (it
 * never shows the AD bit), so the packets are built and parsed with dns-packet.
 *
 * UDP first; a truncated reply (TC) is asked again over TCP (RFC 7766). Every read is
 * bounded: one UDP datagram, or one length-prefixed TCP message (at most 64 KiB), and a
 * timeout for the whole question. A reply that does not parse, does not carry our id or
 * does not repeat our question is ignored (UDP) or an error (TCP), never trusted.
 */
import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { isIPv6, Socket } from 'node:net';
import packet from 'dns-packet';

export interface DnsServer {
  host: string;
  port: number;
}

/** The record types the gateway asks for; SMIMEA (RFC 8162) is type 53. */
export type QueryType = 'A' | 'AAAA' | 'MX' | 'TXT' | 'TLSA' | 'SMIMEA';

const TYPE_CODES: Record<QueryType, number> = {
  A: 1,
  AAAA: 28,
  MX: 15,
  TXT: 16,
  TLSA: 52,
  SMIMEA: 53,
};

/** A TLSA or SMIMEA record's RDATA (RFC 6698 §2.1, RFC 8162 §2). */
export interface CertificateAssociation {
  usage: number;
  selector: number;
  matchingType: number;
  data: Buffer;
}

export type RecordData =
  | { type: 'A' | 'AAAA'; address: string }
  | { type: 'MX'; preference: number; exchange: string }
  | { type: 'TXT'; text: string }
  | ({ type: 'TLSA' | 'SMIMEA' } & CertificateAssociation);

export type DnsRecord = RecordData & { name: string; ttl: number };

export interface DnsReply {
  /** NOERROR, NXDOMAIN, SERVFAIL (what a validating resolver answers for bogus data), … */
  rcode: string;
  /** The resolver's AD bit: it validated every record in the answer with DNSSEC. */
  authenticated: boolean;
  /** The records of the asked type, for the name asked or the end of its CNAME chain. */
  records: DnsRecord[];
}

export class DnsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DnsError';
  }
}

const UDP_PAYLOAD = 1232;
const MAX_TCP_MESSAGE = 65_535;

export async function queryDns(
  server: DnsServer,
  name: string,
  type: QueryType,
  timeoutMs: number,
): Promise<DnsReply> {
  const id = randomInt(0, 65_536);
  const question = packet.encode({
    type: 'query',
    id,
    flags: packet.RECURSION_DESIRED | packet.AUTHENTIC_DATA,
    questions: [{ type: `UNKNOWN_${TYPE_CODES[type]}` as 'A', name, class: 'IN' }],
    additionals: [
      {
        type: 'OPT',
        name: '.',
        udpPayloadSize: UDP_PAYLOAD,
        extendedRcode: 0,
        ednsVersion: 0,
        flags: packet.DNSSEC_OK,
        flag_do: true,
        options: [],
      },
    ],
  });
  const deadline = Date.now() + timeoutMs;
  let reply = await overUdp(
    server,
    question,
    (decoded) => matches(decoded, id, name, type),
    timeoutMs,
  );
  if (reply.flag_tc) {
    reply = await overTcp(server, question, Math.max(1, deadline - Date.now()));
    if (!matches(reply, id, name, type))
      throw new DnsError('TCP reply does not answer the question');
  }
  return readReply(reply, name, type);
}

function matches(reply: packet.DecodedPacket, id: number, name: string, type: QueryType): boolean {
  const asked = reply.questions?.[0];
  return (
    reply.type === 'response' &&
    reply.id === id &&
    reply.questions?.length === 1 &&
    asked !== undefined &&
    sameName(asked.name, name) &&
    typeCode(asked.type) === TYPE_CODES[type]
  );
}

function typeCode(type: string): number {
  const known = (TYPE_CODES as Record<string, number>)[type];
  if (known !== undefined) return known;
  const unknown = /^UNKNOWN_(\d+)$/.exec(type);
  return unknown === null ? -1 : Number(unknown[1]);
}

function sameName(a: string, b: string): boolean {
  return a.replace(/\.$/, '').toLowerCase() === b.replace(/\.$/, '').toLowerCase();
}

function overUdp(
  server: DnsServer,
  question: Buffer,
  accept: (reply: packet.DecodedPacket) => boolean,
  timeoutMs: number,
): Promise<packet.DecodedPacket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(isIPv6(server.host) ? 'udp6' : 'udp4');
    const done = (error: Error | null, reply?: packet.DecodedPacket) => {
      clearTimeout(timer);
      socket.close();
      if (error !== null) reject(error);
      else resolve(reply!);
    };
    const timer = setTimeout(
      () => done(new DnsError(`no answer from ${server.host}:${server.port} (timeout)`)),
      timeoutMs,
    );
    socket.on('error', (error) => done(new DnsError(`DNS over UDP: ${error.message}`)));
    socket.on('message', (message, from) => {
      if (from.port !== server.port) return;
      let decoded: packet.DecodedPacket;
      try {
        decoded = packet.decode(message);
      } catch {
        return; // not a DNS message: keep waiting for the real one until the timeout
      }
      if (accept(decoded)) done(null, decoded);
    });
    socket.connect(server.port, server.host, () => socket.send(question));
  });
}

function overTcp(
  server: DnsServer,
  question: Buffer,
  timeoutMs: number,
): Promise<packet.DecodedPacket> {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    const chunks: Buffer[] = [];
    let received = 0;
    const done = (error: Error | null, reply?: packet.DecodedPacket) => {
      clearTimeout(timer);
      socket.destroy();
      if (error !== null) reject(error);
      else resolve(reply!);
    };
    const timer = setTimeout(
      () => done(new DnsError(`no answer from ${server.host}:${server.port} over TCP (timeout)`)),
      timeoutMs,
    );
    socket.on('error', (error) => done(new DnsError(`DNS over TCP: ${error.message}`)));
    socket.on('close', () => done(new DnsError('DNS over TCP: closed before a whole reply')));
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      if (received > MAX_TCP_MESSAGE + 2) return done(new DnsError('DNS over TCP: reply too long'));
      const all = Buffer.concat(chunks);
      if (all.length < 2 || all.length < 2 + all.readUInt16BE(0)) return;
      try {
        done(null, packet.decode(all.subarray(2, 2 + all.readUInt16BE(0))));
      } catch (error) {
        done(new DnsError(`DNS over TCP: unreadable reply (${(error as Error).message})`));
      }
    });
    socket.connect(server.port, server.host, () => {
      const framed = Buffer.alloc(2 + question.length);
      framed.writeUInt16BE(question.length, 0);
      question.copy(framed, 2);
      socket.write(framed);
    });
  });
}

function readReply(reply: packet.DecodedPacket, name: string, type: QueryType): DnsReply {
  const rcode = (reply as { rcode?: string }).rcode ?? 'NOERROR';
  const answers = reply.answers ?? [];
  // Follow a CNAME chain from the asked name (bounded by the number of answers).
  let owner = name;
  for (let step = 0; step < answers.length; step++) {
    const alias = answers.find((a) => a.type === 'CNAME' && sameName(a.name, owner));
    const target = (alias as { data?: unknown } | undefined)?.data;
    if (typeof target !== 'string') break;
    owner = target;
  }
  const records: DnsRecord[] = [];
  for (const answer of answers) {
    if (!sameName(answer.name, owner) || typeCode(answer.type) !== TYPE_CODES[type]) continue;
    const data = recordData(answer, type);
    if (data !== null)
      records.push({ ...data, name: answer.name, ttl: 'ttl' in answer ? (answer.ttl ?? 0) : 0 });
  }
  return { rcode, authenticated: reply.flag_ad, records };
}

function recordData(answer: packet.Answer, type: QueryType): RecordData | null {
  const data = (answer as { data: unknown }).data;
  switch (type) {
    case 'A':
    case 'AAAA':
      return typeof data === 'string' ? { type, address: data } : null;
    case 'MX': {
      const mx = data as { preference?: number; exchange?: string };
      return typeof mx.exchange === 'string' && typeof mx.preference === 'number'
        ? { type, preference: mx.preference, exchange: mx.exchange }
        : null;
    }
    case 'TXT': {
      // RFC 7208 §3.3 / RFC 8461 §3.1: the strings of one record are concatenated.
      const parts = Array.isArray(data) ? data : [data];
      return {
        type,
        text: parts
          .map((part) => (Buffer.isBuffer(part) ? part.toString('utf8') : String(part)))
          .join(''),
      };
    }
    case 'TLSA': {
      const tlsa = data as packet.TlsaData;
      return {
        type,
        usage: tlsa.usage,
        selector: tlsa.selector,
        matchingType: tlsa.matchingType,
        data: Buffer.from(tlsa.certificate),
      };
    }
    case 'SMIMEA': {
      // dns-packet has no SMIMEA codec: the raw RDATA, laid out as TLSA's.
      if (!Buffer.isBuffer(data) || data.length < 4) return null;
      return {
        type,
        usage: data[0]!,
        selector: data[1]!,
        matchingType: data[2]!,
        data: data.subarray(3),
      };
    }
  }
}
