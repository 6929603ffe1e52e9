/**
 * PROXY protocol on a listener (docs/configuration.md, "PROXY protocol"): every connection
 * must come from a trusted balancer and start with a header (proxy-protocol.ts); anything
 * else is closed and logged, as with HAProxy's `accept-proxy` or nginx's `proxy_protocol`.
 * The header's source address then replaces the socket's remote address, so that the
 * server behind (SMTP, IMAP, HTTPS) sees the client in its limits, logs and headers
 * without knowing a balancer is there.
 *
 * The header is read from the TCP socket before anything else, TLS included; the bytes
 * after it are put back (`unshift`) for the server, which gets the socket as if it had just
 * been accepted.
 */
import { BlockList, isIPv4, isIPv6, type Server, type Socket } from 'node:net';
import { Server as TlsServer, type TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import {
  V2_DEFAULT_MAX_BYTES,
  normalizeAddress,
  parseProxyHeader,
  type ProxyHeader,
} from './proxy-protocol.js';

export interface ProxyProtocolSettings {
  /** Balancer addresses or CIDR ranges, IPv4 or IPv6 ("10.0.0.0/8", "2001:db8::5"). */
  trusted: readonly string[];
  /** The whole header must arrive within this after the connection (default 5 s). */
  headerTimeoutMs?: number;
  /** Cap on a v2 header, TLVs included (default 536 bytes, HAProxy's recommendation). */
  maxHeaderBytes?: number;
}

export const DEFAULT_HEADER_TIMEOUT_MS = 5000;

interface Peer {
  address: string;
  port: number;
  family: 'IPv4' | 'IPv6';
}

/** The trusted list as a BlockList; throws a RangeError naming a bad entry. */
export function trustedPeers(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const match = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(entry.trim());
    const address = match?.[1] ?? '';
    const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined;
    const prefix = match?.[2] === undefined ? undefined : Number(match[2]);
    if (family === undefined || (prefix !== undefined && prefix > (family === 'ipv4' ? 32 : 128)))
      throw new RangeError(`not an IP address or CIDR range: ${entry}`);
    if (prefix === undefined) list.addAddress(address, family);
    else list.addSubnet(address, prefix, family);
  }
  return list;
}

export function isTrustedPeer(list: BlockList, address: string): boolean {
  const normalized = normalizeAddress(address);
  if (isIPv4(normalized)) return list.check(normalized, 'ipv4');
  if (isIPv6(normalized)) return list.check(normalized, 'ipv6');
  return false;
}

/**
 * Puts the PROXY protocol in front of `server`'s connection handling. Call after the
 * server has its 'connection' listeners and before it listens.
 */
export function requireProxyProtocol(
  server: Server,
  settings: ProxyProtocolSettings,
  context: { logger: Logger; listener: string },
): void {
  const trusted = trustedPeers(settings.trusted);
  const timeoutMs = settings.headerTimeoutMs ?? DEFAULT_HEADER_TIMEOUT_MS;
  const maxBytes = settings.maxHeaderBytes ?? V2_DEFAULT_MAX_BYTES;
  const log = context.logger.child({ listener: context.listener });
  const handlers = server.listeners('connection') as ((socket: Socket) => void)[];
  server.removeAllListeners('connection');

  // A TLS socket reads its peer from the TCP handle, not from the socket we changed: it
  // is matched by the balancer's address and port (unique while the connection is open).
  const clients = new Map<string, Peer>();
  if (server instanceof TlsServer) {
    server.prependListener('secureConnection', (socket: TLSSocket) => {
      const client = clients.get(`${socket.remoteAddress}|${socket.remotePort}`);
      if (client !== undefined) setPeer(socket, client);
    });
  }

  server.on('connection', (raw: Socket) => {
    // Errors after the hand-over are the server's; this only keeps an error in the gap
    // before its listeners exist from ending the process.
    raw.on('error', () => undefined);
    const balancer = `${raw.remoteAddress}|${raw.remotePort}`;
    const peer = normalizeAddress(raw.remoteAddress ?? '');
    if (!isTrustedPeer(trusted, peer)) {
      log.info({ ip: peer }, 'PROXY protocol: peer is not a trusted balancer, connection refused');
      raw.destroy();
      return;
    }
    readHeader(raw, timeoutMs, maxBytes, (outcome) => {
      if ('problem' in outcome) {
        log.warn(
          { ip: peer, reason: outcome.problem },
          'PROXY protocol: no valid header, connection refused',
        );
        raw.destroy();
        return;
      }
      const { header, rest } = outcome;
      if (header.kind === 'proxy') {
        const client = { ...header.source, family: header.family };
        clients.set(balancer, client);
        raw.once('close', () => clients.delete(balancer));
        setPeer(raw, client);
        log.debug({ ip: client.address, balancer: peer, version: header.version }, 'PROXY header');
      }
      if (rest.length > 0) raw.unshift(rest);
      for (const handler of handlers) handler.call(server, raw);
    });
  });
}

type HeaderOutcome = { header: ProxyHeader; rest: Buffer } | { problem: string };

/** Reads until the header is complete, invalid, over its cap or late; calls `done` once. */
function readHeader(
  raw: Socket,
  timeoutMs: number,
  maxBytes: number,
  done: (outcome: HeaderOutcome) => void,
): void {
  let held: Buffer = Buffer.alloc(0);
  let finished = false;
  const finish = (outcome: HeaderOutcome): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    raw.off('readable', onReadable);
    raw.off('end', onEnd);
    raw.off('close', onEnd);
    done(outcome);
  };
  const onReadable = (): void => {
    let chunk: Buffer | null;
    while (!finished && (chunk = raw.read() as Buffer | null) !== null) {
      held = held.length === 0 ? chunk : Buffer.concat([held, chunk]);
      // Incomplete means shorter than the header's bound (107 bytes or maxBytes).
      const parsed = parseProxyHeader(held, maxBytes);
      if (parsed.status === 'invalid') finish({ problem: parsed.reason });
      else if (parsed.status === 'done')
        finish({ header: parsed.header, rest: held.subarray(parsed.length) });
    }
  };
  const onEnd = (): void => finish({ problem: 'connection closed before the header' });
  const timer = setTimeout(
    () => finish({ problem: `no complete header within ${timeoutMs} ms` }),
    timeoutMs,
  );
  timer.unref();
  raw.on('readable', onReadable);
  raw.once('end', onEnd);
  raw.once('close', onEnd);
}

/** The client's address where the servers read the peer's: shadows the prototype getters. */
function setPeer(socket: Socket, peer: Peer): void {
  const define = (name: string, value: string | number): void => {
    Object.defineProperty(socket, name, { value, configurable: true, enumerable: true });
  };
  define('remoteAddress', peer.address);
  define('remotePort', peer.port);
  define('remoteFamily', peer.family);
}

/** A listener group's `proxyProtocol` config as server options to spread; {} when off. */
export function withProxyProtocol(
  config: { trusted: string[]; headerTimeout: number; maxHeaderBytes: number } | undefined,
): { proxyProtocol?: ProxyProtocolSettings } {
  if (config === undefined) return {};
  return {
    proxyProtocol: {
      trusted: config.trusted,
      headerTimeoutMs: config.headerTimeout,
      maxHeaderBytes: config.maxHeaderBytes,
    },
  };
}
