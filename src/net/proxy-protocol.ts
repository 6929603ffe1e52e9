/**
 * The PROXY protocol header (versions 1 and 2, as HAProxy specifies it) that a load
 * balancer sends before the client's first byte, naming the client's address. Pure: it
 * reads bytes and says what they are; proxy-listener.ts does the I/O (docs/configuration.md,
 * "PROXY protocol").
 *
 * Called again with more bytes until it answers: a header is never longer than
 * V1_MAX_BYTES (text) or the cap given for the binary form, so the caller holds at most
 * that much.
 */
import { isIPv4, isIPv6 } from 'node:net';

/** The longest v1 line, "PROXY UNKNOWN" with two IPv6 addresses and ports, CRLF included. */
export const V1_MAX_BYTES = 107;
/**
 * Default cap on a v2 header: HAProxy's recommended receive size. TLVs (TLS details,
 * unique ids) fit in it; the 64 KiB the length field allows are refused.
 */
export const V2_DEFAULT_MAX_BYTES = 536;

const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
const V2_SIGNATURE = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);
const V2_FIXED = 16;

export interface ProxyEndpoint {
  address: string;
  port: number;
}

export type ProxyHeader =
  /** The balancer relays a client: use these addresses instead of the TCP peer's. */
  | {
      version: 1 | 2;
      kind: 'proxy';
      family: 'IPv4' | 'IPv6';
      source: ProxyEndpoint;
      destination: ProxyEndpoint;
    }
  /**
   * v2 LOCAL (the balancer's own health check), v1 UNKNOWN or a v2 family without
   * addresses we use: the connection stands for itself, keep the TCP peer's address.
   */
  | { version: 1 | 2; kind: 'local' };

export type ProxyParse =
  | { status: 'incomplete' }
  /** `length`: the header's bytes; whatever follows belongs to the client's protocol. */
  | { status: 'done'; header: ProxyHeader; length: number }
  | { status: 'invalid'; reason: string };

const INCOMPLETE: ProxyParse = { status: 'incomplete' };
const invalid = (reason: string): ProxyParse => ({ status: 'invalid', reason });

/** Reads the header at the start of `bytes`; `maxV2Bytes` bounds the binary form. */
export function parseProxyHeader(
  bytes: Uint8Array,
  maxV2Bytes: number = V2_DEFAULT_MAX_BYTES,
): ProxyParse {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (startsLike(buffer, V2_SIGNATURE)) {
    return buffer.length < V2_SIGNATURE.length ? INCOMPLETE : parseV2(buffer, maxV2Bytes);
  }
  if (startsLike(buffer, V1_PREFIX)) {
    return buffer.length < V1_PREFIX.length ? INCOMPLETE : parseV1(buffer);
  }
  return invalid('not a PROXY protocol header');
}

/** True when `buffer` and `prefix` agree on their common length (an empty buffer agrees). */
function startsLike(buffer: Buffer, prefix: Buffer): boolean {
  const n = Math.min(buffer.length, prefix.length);
  return buffer.subarray(0, n).equals(prefix.subarray(0, n));
}

function parseV1(buffer: Buffer): ProxyParse {
  const window = buffer.subarray(0, V1_MAX_BYTES);
  const end = window.indexOf(0x0a);
  if (end === -1) {
    return buffer.length >= V1_MAX_BYTES ? invalid('v1 header longer than 107 bytes') : INCOMPLETE;
  }
  if (end === 0 || window[end - 1] !== 0x0d) return invalid('v1 header not ended by CRLF');
  const line = window.subarray(0, end - 1);
  // Printable US-ASCII only: the addresses end up in logs and Received headers.
  for (const byte of line) if (byte < 0x20 || byte > 0x7e) return invalid('v1 control byte');
  const fields = line.toString('latin1').split(' ');
  const length = end + 1;
  if (fields[1] === 'UNKNOWN')
    return { status: 'done', header: { version: 1, kind: 'local' }, length };
  if (fields.length !== 6) return invalid('v1 header needs 6 fields');
  const [, protocol, source, destination, sourcePort, destinationPort] = fields as [
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  const family = protocol === 'TCP4' ? 'IPv4' : protocol === 'TCP6' ? 'IPv6' : undefined;
  if (family === undefined) return invalid('v1 protocol not TCP4, TCP6 or UNKNOWN');
  const valid = family === 'IPv4' ? isIPv4 : isIPv6;
  if (!valid(source) || !valid(destination)) return invalid(`v1 address not ${protocol}`);
  const ports = [sourcePort, destinationPort].map(v1Port);
  if (ports[0] === undefined || ports[1] === undefined) return invalid('v1 port not 0..65535');
  return {
    status: 'done',
    header: {
      version: 1,
      kind: 'proxy',
      family,
      source: { address: normalizeAddress(source), port: ports[0] },
      destination: { address: normalizeAddress(destination), port: ports[1] },
    },
    length,
  };
}

/** Decimal without leading zeros, as the specification writes them. */
function v1Port(text: string): number | undefined {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(text)) return undefined;
  const port = Number(text);
  return port <= 65535 ? port : undefined;
}

function parseV2(buffer: Buffer, maxBytes: number): ProxyParse {
  if (buffer.length < V2_FIXED) return INCOMPLETE;
  const versionCommand = buffer[12]!;
  if (versionCommand >> 4 !== 2) return invalid('v2 version not 2');
  const command = versionCommand & 0x0f;
  if (command > 1) return invalid('v2 command not LOCAL or PROXY');
  const familyByte = buffer[13]!;
  const addressFamily = familyByte >> 4;
  const transport = familyByte & 0x0f;
  if (addressFamily > 3 || transport > 2) return invalid('v2 unknown address family');
  const length = V2_FIXED + buffer.readUInt16BE(14);
  if (length > maxBytes) return invalid(`v2 header longer than ${maxBytes} bytes`);
  if (buffer.length < length) return INCOMPLETE;
  const block = buffer.subarray(V2_FIXED, length);
  // LOCAL: a balancer's health check; its address block, if any, is to be ignored.
  if (command === 0) return { status: 'done', header: { version: 2, kind: 'local' }, length };
  if (transport === 2) return invalid('v2 datagram transport on a stream listener');
  const addressBytes =
    addressFamily === 1 ? 12 : addressFamily === 2 ? 36 : addressFamily === 3 ? 216 : 0;
  if (block.length < addressBytes) return invalid('v2 address block truncated');
  const tlvProblem = checkTlvs(block.subarray(addressBytes));
  if (tlvProblem !== undefined) return invalid(tlvProblem);
  // UNSPEC and UNIX name no IP client: keep the TCP peer, as for LOCAL.
  if (addressFamily !== 1 && addressFamily !== 2) {
    return { status: 'done', header: { version: 2, kind: 'local' }, length };
  }
  const size = addressFamily === 1 ? 4 : 16;
  const format = addressFamily === 1 ? formatIPv4 : formatIPv6;
  return {
    status: 'done',
    header: {
      version: 2,
      kind: 'proxy',
      family: addressFamily === 1 ? 'IPv4' : 'IPv6',
      source: { address: format(block.subarray(0, size)), port: block.readUInt16BE(2 * size) },
      destination: {
        address: format(block.subarray(size, 2 * size)),
        port: block.readUInt16BE(2 * size + 2),
      },
    },
    length,
  };
}

/** TLVs are skipped, but each must fit: a header that lies about its parts is refused. */
function checkTlvs(tlvs: Buffer): string | undefined {
  let at = 0;
  while (at < tlvs.length) {
    if (tlvs.length - at < 3) return 'v2 TLV truncated';
    const size = tlvs.readUInt16BE(at + 1);
    at += 3 + size;
    if (at > tlvs.length) return 'v2 TLV longer than the header';
  }
  return undefined;
}

function formatIPv4(bytes: Buffer): string {
  return [...bytes].join('.');
}

/** RFC 5952 text (normalizeAddress); an IPv4-mapped address as the IPv4 address it carries. */
function formatIPv6(bytes: Buffer): string {
  const words = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(2 * i).toString(16));
  return normalizeAddress(words.join(':'));
}

/**
 * One spelling per address, so that per-IP counts and buckets agree: lower case,
 * compressed IPv6 (the WHATWG URL serializer is RFC 5952's), and an IPv4-mapped IPv6
 * address (a dual-stack listener's peer) as IPv4.
 */
export function normalizeAddress(address: string): string {
  if (!isIPv6(address)) return address;
  let text: string;
  try {
    text = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  } catch {
    // A zone index ("fe80::1%eth0") is no URL host; such a peer keeps its spelling.
    return address.toLowerCase();
  }
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(text);
  if (mapped === null) return text;
  const high = parseInt(mapped[1]!, 16);
  const low = parseInt(mapped[2]!, 16);
  return [high >> 8, high & 0xff, low >> 8, low & 0xff].join('.');
}
