/**
 * The PROXY protocol parser against the examples and rules of HAProxy's specification
 * (proxy-protocol.txt): v1 TCP4/TCP6/UNKNOWN, v2 PROXY/LOCAL over IPv4/IPv6, TLVs skipped,
 * and every kind of bad header refused; every header also fed one byte at a time.
 */
import { describe, expect, it } from 'vitest';
import {
  V1_MAX_BYTES,
  normalizeAddress,
  parseProxyHeader,
  type ProxyParse,
} from '../../src/net/proxy-protocol.js';

const SIG = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

function v2(versionCommand: number, family: number, block: Buffer): Buffer {
  const length = Buffer.alloc(2);
  length.writeUInt16BE(block.length);
  return Buffer.concat([SIG, Buffer.from([versionCommand, family]), length, block]);
}

function ipv4Block(src: number[], dst: number[], sport: number, dport: number): Buffer {
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(sport, 0);
  ports.writeUInt16BE(dport, 2);
  return Buffer.concat([Buffer.from(src), Buffer.from(dst), ports]);
}

function tlv(type: number, value: Buffer): Buffer {
  const head = Buffer.from([type, 0, 0]);
  head.writeUInt16BE(value.length, 1);
  return Buffer.concat([head, value]);
}

/** Every strict prefix is incomplete; the whole gives the same answer as in one chunk. */
function byteByByte(bytes: Buffer, max?: number): ProxyParse {
  for (let n = 0; n < bytes.length; n++) {
    const partial = parseProxyHeader(bytes.subarray(0, n), max);
    if (partial.status !== 'incomplete') return partial;
  }
  return parseProxyHeader(bytes, max);
}

describe('PROXY protocol v1', () => {
  it('reads the specification example TCP4 line and leaves what follows', () => {
    const header = 'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n';
    const bytes = Buffer.from(header + 'EHLO x\r\n');
    const result = parseProxyHeader(bytes);
    expect(result).toEqual({
      status: 'done',
      length: header.length,
      header: {
        version: 1,
        kind: 'proxy',
        family: 'IPv4',
        source: { address: '192.168.0.1', port: 56324 },
        destination: { address: '192.168.0.11', port: 443 },
      },
    });
    expect(byteByByte(Buffer.from(header))).toEqual(result);
  });

  it('reads the worst-case TCP4, TCP6 and UNKNOWN lines (56, 104 and 107 bytes)', () => {
    const tcp4 = 'PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n';
    const ffff = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
    const tcp6 = `PROXY TCP6 ${ffff} ${ffff} 65535 65535\r\n`;
    const unknown = `PROXY UNKNOWN ${ffff} ${ffff} 65535 65535\r\n`;
    expect([tcp4.length, tcp6.length, unknown.length]).toEqual([56, 104, V1_MAX_BYTES]);
    const r4 = byteByByte(Buffer.from(tcp4));
    expect(r4.status === 'done' && r4.header.kind === 'proxy' && r4.header.source).toEqual({
      address: '255.255.255.255',
      port: 65535,
    });
    const r6 = byteByByte(Buffer.from(tcp6));
    expect(r6.status === 'done' && r6.header.kind === 'proxy' && r6.header.family).toBe('IPv6');
    expect(r6.status === 'done' && r6.header.kind === 'proxy' && r6.header.source.address).toBe(
      ffff,
    );
    expect(byteByByte(Buffer.from(unknown))).toEqual({
      status: 'done',
      length: 107,
      header: { version: 1, kind: 'local' },
    });
    expect(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n'))).toEqual({
      status: 'done',
      length: 15,
      header: { version: 1, kind: 'local' },
    });
  });

  it('writes an IPv6 source in its short form and an IPv4-mapped one as IPv4', () => {
    const r = parseProxyHeader(
      Buffer.from('PROXY TCP6 2001:DB8:0:0:0:0:0:7 ::ffff:198.51.100.4 1 2\r\n'),
    );
    expect(r.status === 'done' && r.header.kind === 'proxy' && r.header.source.address).toBe(
      '2001:db8::7',
    );
    expect(r.status === 'done' && r.header.kind === 'proxy' && r.header.destination.address).toBe(
      '198.51.100.4',
    );
  });

  it.each([
    ['no CRLF within 107 bytes', `PROXY UNKNOWN ${'x'.repeat(100)}`],
    ['bare LF', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n'],
    ['unknown protocol', 'PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n'],
    ['lower-case keyword', 'proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n'],
    ['IPv6 under TCP4', 'PROXY TCP4 ::1 ::1 1 2\r\n'],
    ['IPv4 under TCP6', 'PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n'],
    ['hostname', 'PROXY TCP4 evil.example 5.6.7.8 1 2\r\n'],
    ['port over 65535', 'PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n'],
    ['port with leading zero', 'PROXY TCP4 1.2.3.4 5.6.7.8 0443 2\r\n'],
    ['missing port', 'PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n'],
    ['double space', 'PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n'],
    ['extra field', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n'],
    ['control byte', 'PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n'],
    ['no header at all', 'EHLO client.example\r\n'],
    ['TLS ClientHello', '\x16\x03\x01\x02\x00'],
  ])('refuses %s', (_name, text) => {
    expect(byteByByte(Buffer.from(text, 'latin1')).status).toBe('invalid');
  });

  it('refuses a non-header on its first differing byte, without waiting for more', () => {
    expect(parseProxyHeader(Buffer.from('G')).status).toBe('invalid');
    expect(parseProxyHeader(Buffer.from('PROXX')).status).toBe('invalid');
    expect(parseProxyHeader(Buffer.from('PROX')).status).toBe('incomplete');
    expect(parseProxyHeader(Buffer.alloc(0)).status).toBe('incomplete');
  });
});

describe('PROXY protocol v2', () => {
  it('reads PROXY over TCP/IPv4 and leaves the client bytes that follow', () => {
    const header = v2(0x21, 0x11, ipv4Block([203, 0, 113, 9], [192, 0, 2, 1], 40000, 25));
    const result = parseProxyHeader(Buffer.concat([header, Buffer.from('\x16\x03\x01')]));
    expect(result).toEqual({
      status: 'done',
      length: 28,
      header: {
        version: 2,
        kind: 'proxy',
        family: 'IPv4',
        source: { address: '203.0.113.9', port: 40000 },
        destination: { address: '192.0.2.1', port: 25 },
      },
    });
    expect(byteByByte(header)).toEqual(result);
  });

  it('reads PROXY over TCP/IPv6', () => {
    const src = Buffer.from('20010db8000000000000000000000042', 'hex');
    const dst = Buffer.from('20010db8000000000000000000000001', 'hex');
    const header = v2(0x21, 0x21, Buffer.concat([src, dst, Buffer.from([0x9c, 0x40, 0x03, 0xe1])]));
    const result = byteByByte(header);
    expect(result).toEqual({
      status: 'done',
      length: 52,
      header: {
        version: 2,
        kind: 'proxy',
        family: 'IPv6',
        source: { address: '2001:db8::42', port: 40000 },
        destination: { address: '2001:db8::1', port: 993 },
      },
    });
  });

  it('skips TLVs (ALPN, authority, SSL with sub-TLVs, NOOP padding) after the addresses', () => {
    const tlvs = Buffer.concat([
      tlv(0x01, Buffer.from('h2')),
      tlv(0x02, Buffer.from('mail.example.org')),
      tlv(
        0x20,
        Buffer.concat([Buffer.from([0x01, 0, 0, 0, 0]), tlv(0x21, Buffer.from('TLSv1.3'))]),
      ),
      tlv(0x04, Buffer.alloc(7)),
    ]);
    const header = v2(
      0x21,
      0x11,
      Buffer.concat([ipv4Block([198, 51, 100, 7], [10, 0, 0, 1], 1, 2), tlvs]),
    );
    const result = byteByByte(header);
    expect(result.status === 'done' && result.length).toBe(header.length);
    expect(
      result.status === 'done' && result.header.kind === 'proxy' && result.header.source,
    ).toEqual({ address: '198.51.100.7', port: 1 });
  });

  it('takes LOCAL (a health check) with or without an address block as "keep the peer"', () => {
    for (const header of [
      v2(0x20, 0x00, Buffer.alloc(0)),
      v2(0x20, 0x11, ipv4Block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)),
    ]) {
      expect(byteByByte(header)).toEqual({
        status: 'done',
        length: header.length,
        header: { version: 2, kind: 'local' },
      });
    }
  });

  it('takes PROXY with UNSPEC or UNIX addresses as "keep the peer"', () => {
    expect(parseProxyHeader(v2(0x21, 0x00, Buffer.alloc(0)))).toMatchObject({
      status: 'done',
      header: { kind: 'local' },
    });
    expect(parseProxyHeader(v2(0x21, 0x31, Buffer.alloc(216)))).toMatchObject({
      status: 'done',
      header: { kind: 'local' },
    });
  });

  it.each([
    ['version 1 in the binary form', v2(0x11, 0x11, ipv4Block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2))],
    ['command 2', v2(0x22, 0x11, ipv4Block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2))],
    ['address family 4', v2(0x21, 0x41, ipv4Block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2))],
    ['transport 3', v2(0x21, 0x13, ipv4Block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2))],
    ['UDP on a stream listener', v2(0x21, 0x12, ipv4Block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2))],
    ['IPv4 block too short for its addresses', v2(0x21, 0x11, Buffer.alloc(11))],
    ['IPv6 block too short for its addresses', v2(0x21, 0x21, Buffer.alloc(35))],
    [
      'a TLV running past the header',
      v2(
        0x21,
        0x11,
        Buffer.concat([ipv4Block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2), Buffer.from([1, 0, 9, 0x61])]),
      ),
    ],
    [
      'a TLV cut in its type-length',
      v2(
        0x21,
        0x11,
        Buffer.concat([ipv4Block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2), Buffer.from([1, 0])]),
      ),
    ],
    [
      'a damaged signature',
      Buffer.concat([Buffer.from('0d0a0d0a000d0a515549540b', 'hex'), Buffer.alloc(4)]),
    ],
  ])('refuses %s', (_name, bytes) => {
    expect(byteByByte(bytes).status).toBe('invalid');
  });

  it('refuses a header longer than the cap from its length field, before it arrives', () => {
    const head = Buffer.concat([SIG, Buffer.from([0x21, 0x11, 0xff, 0xff])]);
    expect(parseProxyHeader(head)).toEqual({
      status: 'invalid',
      reason: 'v2 header longer than 536 bytes',
    });
    const big = v2(
      0x21,
      0x11,
      Buffer.concat([ipv4Block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2), tlv(4, Buffer.alloc(600))]),
    );
    expect(parseProxyHeader(big).status).toBe('invalid');
    expect(parseProxyHeader(big, 1024).status).toBe('done');
  });

  it('waits for a header whose bytes are still coming (truncated so far)', () => {
    const header = v2(0x21, 0x11, ipv4Block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2));
    expect(parseProxyHeader(header.subarray(0, 20)).status).toBe('incomplete');
    expect(parseProxyHeader(header.subarray(0, 5)).status).toBe('incomplete');
  });
});

describe('normalizeAddress', () => {
  it('gives one spelling per address', () => {
    expect(normalizeAddress('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(normalizeAddress('::FFFF:7f00:1')).toBe('127.0.0.1');
    expect(normalizeAddress('2001:DB8::0:1')).toBe('2001:db8::1');
    expect(normalizeAddress('10.1.2.3')).toBe('10.1.2.3');
    expect(normalizeAddress('::1')).toBe('::1');
  });
});
