/**
 * The embedded store's LMTP listener (RFC 2033) on smtp-server in LMTP mode. It owns
 * only the wire: recipients are checked at RCPT (unknown user → 550 5.1.1), and after
 * DATA every recipient gets its own reply, 250 only once `MailStore.deliver` has made the
 * message durable. No AUTH, no STARTTLS: in the gateway it listens on a Unix socket in
 * the data directory (mode 0600 in a 0700 directory), so only the gateway's own user can
 * deliver; a TCP port (tests, `port`) would let any local user store mail
 * (docs/threat-model.md, "At rest").
 *
 * Recipient → user: the whole address lower-cased (local part too, like Dovecot's
 * common `auth_username_format = %Lu`); pass `userFromAddress` to change that. Bytes
 * are stored exactly as received after dot-unstuffing (no Return-Path/Received added).
 */
import { lstatSync, unlinkSync } from 'node:fs';
import { chmod } from 'node:fs/promises';
import { connect, type AddressInfo } from 'node:net';
import type { SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import { FastDataSmtpServer } from '../../smtp/data-stream.js';
import { StoreError, type MailStore } from '../backend.js';
import { lmtpResultOf, type LmtpMetrics } from './metrics.js';

export interface LmtpLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface LmtpServerOptions {
  store: MailStore;
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 picks a free port (see the returned handle). Ignored when `path` is set. */
  port?: number;
  /** A Unix socket to listen on instead of TCP; created with mode 0600. */
  path?: string;
  /** Largest message in bytes (default 64 MiB); larger → 552 5.3.4 for every recipient. */
  maxSize?: number;
  logger?: LmtpLogger;
  userFromAddress?: (address: string) => string;
  /** Host name in the greeting and LHLO reply. */
  name?: string;
  /** Counts deliveries per recipient by result (see metrics.ts). */
  metrics?: LmtpMetrics;
}

export interface LmtpServerHandle {
  readonly host: string;
  /** 0 when listening on a Unix socket. */
  readonly port: number;
  readonly path?: string;
  close(): Promise<void>;
}

type ReplyError = Error & { responseCode: number };

function reply(code: number, message: string): ReplyError {
  return Object.assign(new Error(message), { responseCode: code });
}

/** One place that turns storage errors into LMTP replies (enhanced codes added by smtp-server). */
export function deliveryReply(err: unknown): ReplyError {
  if (err instanceof StoreError) {
    switch (err.code) {
      case 'no-such-user':
        return reply(550, 'No such user here');
      case 'over-quota':
        return reply(452, 'Mailbox full, try again later');
      case 'too-large':
        return reply(552, 'Message too large');
      default:
        return reply(451, 'Local error in processing, try again later');
    }
  }
  return reply(451, 'Local error in processing, try again later');
}

const defaultUser = (address: string): string => address.toLowerCase();

export async function startLmtpServer(options: LmtpServerOptions): Promise<LmtpServerHandle> {
  const { store, logger, metrics } = options;
  const host = options.host ?? '127.0.0.1';
  const maxSize = options.maxSize ?? 64 * 1024 * 1024;
  const toUser = options.userFromAddress ?? defaultUser;

  const onRcptTo = (
    address: { address: string },
    _session: SMTPServerSession,
    callback: (err?: Error | null) => void,
  ): void => {
    let user: string;
    try {
      user = toUser(address.address);
    } catch {
      callback(reply(550, 'No such user here'));
      return;
    }
    store.userExists(user).then(
      (exists) => callback(exists ? null : reply(550, 'No such user here')),
      () => callback(reply(451, 'Local error in processing, try again later')),
    );
  };

  const onData = (
    stream: SMTPServerDataStream,
    session: SMTPServerSession,
    callback: (err?: Error | null, message?: string | Array<string | Error>) => void,
  ): void => {
    // With SIZE (the MX's LMTP client declares it) the message goes into one buffer as it
    // arrives: no concatenation of a 68 MB message in one synchronous step at the end,
    // which would stall every other connection of the gateway's event loop.
    const declared = Number(
      (session.envelope.mailFrom && session.envelope.mailFrom.args
        ? session.envelope.mailFrom.args.SIZE
        : undefined) ?? NaN,
    );
    let whole =
      Number.isSafeInteger(declared) && declared > 0 && declared <= maxSize
        ? Buffer.allocUnsafe(declared)
        : undefined;
    const chunks: Buffer[] = [];
    let length = 0;
    stream.on('data', (chunk: Buffer) => {
      // past the limit keep draining but stop buffering; smtp-server answers 552
      if (!stream.sizeExceeded && length + chunk.length <= maxSize) {
        if (whole !== undefined && length + chunk.length <= whole.length) chunk.copy(whole, length);
        else {
          // More than declared: the chunks so far, then collect as without SIZE.
          if (whole !== undefined) chunks.push(whole.subarray(0, length));
          whole = undefined;
          chunks.push(chunk);
        }
      }
      length += chunk.length;
    });
    stream.on('error', () => callback(reply(451, 'Local error in processing, try again later')));
    stream.on('end', () => {
      if (stream.sizeExceeded || length > maxSize) {
        metrics?.deliveries.inc({ result: 'rejected' }, session.envelope.rcptTo.length);
        callback(null, 'too large');
        return;
      }
      const message =
        whole !== undefined ? whole.subarray(0, length) : Buffer.concat(chunks, length);
      const recipients = session.envelope.rcptTo.map((r) => r.address);
      void Promise.all(
        recipients.map(async (address): Promise<string | Error> => {
          try {
            const user = toUser(address);
            const result = await store.deliver(user, message);
            logger?.info({ uid: result.uid, size: message.length }, 'lmtp: delivered');
            metrics?.deliveries.inc({ result: 'stored' });
            return `Saved as UID ${result.uid}`;
          } catch (err) {
            const out = deliveryReply(err);
            metrics?.deliveries.inc({ result: lmtpResultOf(out.responseCode) });
            logger?.warn(
              { code: out.responseCode, reason: err instanceof StoreError ? err.code : 'error' },
              'lmtp: delivery failed',
            );
            return out;
          }
        }),
      ).then((results) => callback(null, results));
    });
  };

  // DATA parsed with a Buffer.indexOf scan, not smtp-server's per-byte loop (the largest
  // item of a large delivery on the gateway's event loop; src/smtp/data-stream.ts).
  const server = new FastDataSmtpServer({
    lmtp: true,
    name: options.name ?? 'localhost',
    banner: 'recrypt embedded store LMTP',
    disabledCommands: ['AUTH', 'STARTTLS'],
    authOptional: true,
    hideSTARTTLS: true,
    hideENHANCEDSTATUSCODES: false,
    hideDSN: true,
    size: maxSize,
    rejectOversized: true,
    logger: false,
    // Only the gateway on this machine connects: a reverse DNS lookup per connection
    // would add ~100 ms to every delivery and tell us nothing.
    disableReverseLookup: true,
    onRcptTo,
    onData,
  });

  const path = options.path;
  if (path !== undefined) await removeStaleSocket(path);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const listening = () => {
      server.off('error', reject);
      resolve();
    };
    if (path !== undefined) server.listen(path, listening);
    else server.listen(options.port ?? 0, host, listening);
  });
  server.on('error', (err: Error) => logger?.warn({ err: err.message }, 'lmtp: server error'));
  const close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  if (path !== undefined) {
    // The directory (0700) already keeps other users out; the mode is the second lock.
    await chmod(path, 0o600).catch(async (error: unknown) => {
      await close();
      throw error;
    });
    return { host: '', port: 0, path, close };
  }
  return { host, port: (server.server.address() as AddressInfo).port, close };
}

/**
 * A socket file left by a process that died (kill -9) would make listen fail with
 * EADDRINUSE: remove it when nothing answers on it. A live listener is another gateway on
 * the same data directory, which must not be silently cut off.
 */
async function removeStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return;
  }
  if (!isSocket) return;
  const alive = await new Promise<boolean>((resolve) => {
    const probe = connect({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (alive) {
    throw Object.assign(new Error(`${path} is in use by another process`), {
      code: 'EADDRINUSE',
      address: path,
    });
  }
  unlinkSync(path);
}
