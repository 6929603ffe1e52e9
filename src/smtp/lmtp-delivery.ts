/**
 * A DeliveryTarget that speaks LMTP (RFC 2033) to a store — Dovecot's lmtpd on host:port
 * or a Unix socket, or the embedded store on its socket in the data directory — and
 * reports one result per recipient. One connection per
 * delivery: no pooled socket can be half-dead when a message is waiting.
 *
 * A streamed message (ports.ts `StreamedMessage`: the encryptor's output, made while it is
 * sent) is pulled piece by piece and each piece written before the next is made, so the
 * store's pace sets the encryption's and only a piece or two is queued at a time.
 *
 * Hand-written (about a hundred lines) instead of nodemailer's SMTP client in LMTP mode:
 * that client dot-stuffs byte by byte in JavaScript, which dominated the MX benchmark for
 * large messages, and a small client shows plainly which reply belongs to which mailbox.
 */
import { type Socket, connect } from 'node:net';
import { DotStuffer, dotStuff } from './dot-stuffing.js';
import type { DeliveryResult, DeliveryTarget, OutgoingMessage } from './ports.js';

/** Where the store listens: TCP, or a Unix socket (the embedded store's). */
export type LmtpEndpoint = { host: string; port: number } | { path: string };

export type LmtpTargetOptions = LmtpEndpoint & {
  /** Our name in LHLO. */
  name?: string;
  /** Connect and per-reply limit (ms); the final replies may take this long each. */
  timeoutMs?: number;
};

interface Reply {
  code: number;
  text: string;
}

/** Reads SMTP/LMTP replies (multi-line ones whole) from a socket, in order. */
class ReplyReader {
  private buffer = '';
  private failure: Error | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly socket: Socket,
    private readonly timeoutMs: number,
  ) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer += chunk.toString('latin1');
      this.wake?.();
    });
    socket.on('error', (error) => this.fail(error));
    socket.on('close', () => this.fail(new Error('LMTP connection closed')));
  }

  private fail(error: Error): void {
    this.failure ??= error;
    this.wake?.();
  }

  async next(): Promise<Reply> {
    for (;;) {
      const match = /^((?:\d{3}-[^\n]*\n)*(\d{3})(?: [^\n]*)?\r?\n)/.exec(this.buffer);
      if (match !== null) {
        this.buffer = this.buffer.slice(match[1]!.length);
        return {
          code: Number(match[2]),
          text: match[1]!.trim().replace(/\r?\n/g, ' | ').slice(0, 300),
        };
      }
      if (this.failure !== undefined) throw this.failure;
      if (this.buffer.length > 64 * 1024) throw new Error('LMTP reply too long');
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no LMTP reply within ${this.timeoutMs} ms`)),
          this.timeoutMs,
        );
        this.wake = () => {
          clearTimeout(timer);
          this.wake = undefined;
          resolve();
        };
      });
    }
  }
}

const SAFE_PATH = /^[^\r\n<>\s]*$/;

function failed(mailbox: string, reply: Reply): DeliveryResult {
  return {
    mailbox,
    status: reply.code >= 500 ? 'rejected' : 'temp-failed',
    code: reply.code,
    response: reply.text,
  };
}

/** Writes, then waits for the socket to drain if its buffer is full (see `drained`). */
async function write(socket: Socket, data: Buffer | string, timeoutMs: number): Promise<void> {
  socket.write(data);
  await drained(socket, timeoutMs);
}

/**
 * Waits, when the socket's buffer is full, until it drains: what is queued for the store
 * stays small, and the event loop runs while the store reads. A socket that closes, fails
 * or does not drain within `timeoutMs` rejects instead of waiting forever.
 */
async function drained(socket: Socket, timeoutMs: number): Promise<void> {
  if (!socket.writableNeedDrain) return;
  if (socket.destroyed) throw new Error('LMTP connection closed');
  await new Promise<void>((resolve, reject) => {
    const done = (error?: Error): void => {
      clearTimeout(timer);
      socket.off('drain', onDrain);
      socket.off('close', closed);
      socket.off('error', done);
      if (error === undefined) resolve();
      else reject(error);
    };
    const onDrain = (): void => done();
    const closed = (): void => done(new Error('LMTP connection closed'));
    const timer = setTimeout(
      () => done(new Error(`LMTP store read nothing for ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.on('drain', onDrain);
    socket.on('close', closed);
    socket.on('error', done);
  });
}

/**
 * Resolves once the socket has handed `parts` to the kernel (the last write's callback),
 * so that their memory may be reused; rejects when the socket closes, fails or takes
 * nothing for `timeoutMs`.
 */
async function writeAll(socket: Socket, parts: Buffer[], timeoutMs: number): Promise<void> {
  if (parts.length === 0) return;
  if (socket.destroyed) throw new Error('LMTP connection closed');
  await new Promise<void>((resolve, reject) => {
    const done = (error?: Error | null): void => {
      clearTimeout(timer);
      socket.off('close', closed);
      if (error === undefined || error === null) resolve();
      else reject(error);
    };
    const closed = (): void => done(new Error('LMTP connection closed'));
    const timer = setTimeout(
      () => done(new Error(`LMTP store read nothing for ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.on('close', closed);
    socket.cork();
    for (const part of parts.slice(0, -1)) socket.write(part);
    socket.write(parts[parts.length - 1]!, (error) => done(error));
    socket.uncork();
  });
}

/** A streamed copy is written in batches of about this size (one system call each). */
const BATCH_BYTES = 64 * 1024;

/**
 * The message after DATA's 354, dot-stuffed, without the final ".". A whole one is
 * written at once: it is already in memory. A streamed message is pulled a piece at a
 * time and written in batches, each before the next piece is made (backpressure from the
 * store back to the encryption). A piece's memory may be reused once the next one is
 * pulled (the encryption pool's slots, src/smtp/adapters/encrypt-pool.ts): so before each
 * pull, what was written of it has reached the kernel, and what waits for a fuller batch
 * is a copy.
 */
async function writeData(socket: Socket, message: OutgoingMessage, timeoutMs: number) {
  if (message instanceof Uint8Array) {
    socket.cork();
    for (const part of dotStuff(message)) socket.write(part);
    socket.uncork();
    return;
  }
  const stuffer = new DotStuffer();
  let batch: Buffer[] = [];
  let batched = 0;
  const add = async (parts: Buffer[], last = false): Promise<void> => {
    const size = parts.reduce((sum, part) => sum + part.length, 0);
    if (batched + size < BATCH_BYTES && !last) {
      // Kept for a fuller batch: copied, not views into a piece that may be reused.
      for (const part of parts) batch.push(Buffer.from(part));
      batched += size;
      return;
    }
    const ready = [...batch, ...parts];
    batch = [];
    batched = 0;
    await writeAll(socket, ready, timeoutMs);
  };
  await add(stuffer.push(message.head));
  for await (const piece of message.body()) await add(stuffer.push(piece));
  await add(stuffer.end(), true);
}

export function lmtpDelivery(options: LmtpTargetOptions): DeliveryTarget {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const name = options.name ?? 'recrypt-mx';
  return {
    async deliver(envelope, message) {
      const { mailFrom, mailboxes } = envelope;
      if (
        !SAFE_PATH.test(mailFrom) ||
        !mailboxes.every((mailbox) => mailbox.length > 0 && SAFE_PATH.test(mailbox))
      ) {
        throw new Error('refusing an envelope address with CR, LF, space or angle brackets');
      }
      const socket =
        'path' in options
          ? connect({ path: options.path })
          : connect({ host: options.host, port: options.port });
      socket.setNoDelay(true);
      const replies = new ReplyReader(socket, timeoutMs);
      try {
        const greeting = await replies.next();
        if (greeting.code !== 220) throw new Error(`LMTP greeting: ${greeting.text}`);
        await write(socket, `LHLO ${name}\r\n`, timeoutMs);
        const lhlo = await replies.next();
        if (lhlo.code !== 250) throw new Error(`LHLO: ${lhlo.text}`);
        const utf8 = /[^\x20-\x7e]/.test(mailFrom + mailboxes.join(''));
        // SIZE (RFC 1870) lets the store take the message into one buffer as it arrives.
        const params = `${/\b8BITMIME\b/i.test(lhlo.text) ? ' BODY=8BITMIME' : ''}${utf8 && /\bSMTPUTF8\b/i.test(lhlo.text) ? ' SMTPUTF8' : ''}${/\bSIZE\b/i.test(lhlo.text) ? ` SIZE=${message.byteLength}` : ''}`;
        await write(socket, `MAIL FROM:<${mailFrom}>${params}\r\n`, timeoutMs);
        const mail = await replies.next();
        if (mail.code !== 250) return mailboxes.map((mailbox) => failed(mailbox, mail));

        const results = new Map<string, DeliveryResult>();
        const accepted: string[] = [];
        for (const mailbox of mailboxes) {
          await write(socket, `RCPT TO:<${mailbox}>\r\n`, timeoutMs);
          const rcpt = await replies.next();
          if (rcpt.code === 250 || rcpt.code === 251) accepted.push(mailbox);
          else results.set(mailbox, failed(mailbox, rcpt));
        }
        if (accepted.length > 0) {
          await write(socket, 'DATA\r\n', timeoutMs);
          const data = await replies.next();
          if (data.code !== 354) {
            for (const mailbox of accepted) results.set(mailbox, failed(mailbox, data));
          } else {
            await writeData(socket, message, timeoutMs);
            await write(socket, '.\r\n', timeoutMs);
            // RFC 2033 §4.2: one reply per accepted recipient, in RCPT order.
            for (const mailbox of accepted) {
              const reply = await replies.next();
              results.set(
                mailbox,
                reply.code === 250 ? { mailbox, status: 'stored' } : failed(mailbox, reply),
              );
            }
          }
        }
        socket.end('QUIT\r\n');
        return mailboxes.map((mailbox) => results.get(mailbox)!);
      } catch (error) {
        // Cut off without the final ".": the store keeps nothing of a message that failed
        // while it was sent (a streamed copy whose encryption failed, a store that hung).
        socket.destroy();
        throw error;
      } finally {
        socket.destroySoon();
        setTimeout(() => socket.destroy(), 1000).unref();
      }
    },
  };
}
