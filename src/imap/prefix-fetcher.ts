/**
 * The side connection that answers "the first N bytes of this section of this message":
 * needed when a client's partial fetch starts past the CMS prefix and no plan is cached.
 * It logs in as the same user, EXAMINEs (read-only, so \Recent and \Seen are untouched)
 * the client's mailbox, checks UIDVALIDITY, and does `UID FETCH n (BODY.PEEK[s]<0.N>)` —
 * or, for a response that named no UID, `NOOP` then `FETCH n (…)` by sequence number (the
 * caller compares the answer with the bytes it has; body-literal.ts).
 * Requests are serialised; the connection is opened on first use and reused.
 */
import { peekItemFor } from './fetch-item.js';
import { MAX_PREFIX, type PrefixRequest } from './body-literal.js';
import {
  quoteMailbox,
  UpstreamConnection,
  type MasterCredential,
  type UpstreamOptions,
} from './upstream.js';

export class PrefixFetcher {
  private connection: UpstreamConnection | null = null;
  private examined: { mailbox: string; uidValidity: number } | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly upstream: UpstreamOptions,
    private readonly master: MasterCredential,
    private readonly address: string,
    private readonly timeoutMs = 10_000,
  ) {}

  fetch(request: PrefixRequest): Promise<Uint8Array | null> {
    const next = this.queue.then(() => this.withTimeout(request));
    this.queue = next.catch(() => undefined);
    return next.catch(() => {
      this.reset();
      return null;
    });
  }

  /**
   * The client's response stream waits on this: a store that does not answer must not
   * stall it forever. On timeout the side connection is dropped (the body passes unchanged).
   */
  private withTimeout(request: PrefixRequest): Promise<Uint8Array | null> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.reset();
        reject(new Error('prefix fetch timed out'));
      }, this.timeoutMs);
      this.fetchNow(request).then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (error: unknown) => {
          clearTimeout(timer);
          reject(error as Error);
        },
      );
    });
  }

  private async fetchNow(request: PrefixRequest): Promise<Uint8Array | null> {
    if (this.closed) return null;
    const mailbox = quoteMailbox(request.mailbox);
    if (mailbox === null) return null;
    this.connection ??= await UpstreamConnection.open(this.upstream, this.master, this.address);
    const connection = this.connection;
    if (this.examined?.mailbox !== request.mailbox) {
      this.examined = null;
      const result = await connection.command(`EXAMINE ${mailbox}`);
      if (!/^OK\b/i.test(result.status)) return null;
      const validity = result.untagged
        .map((r) => /\[UIDVALIDITY (\d+)\]/i.exec(r.text))
        .find((m) => m !== null);
      if (validity === undefined || validity === null) return null;
      this.examined = { mailbox: request.mailbox, uidValidity: Number(validity[1]) };
    }
    if (this.examined.uidValidity !== request.uidValidity) return null;
    const length = Math.min(request.length, MAX_PREFIX);
    let command: string;
    if (request.uid !== undefined) {
      command = `UID FETCH ${request.uid} (${peekItemFor(request.item, length)})`;
    } else {
      // NOOP first: this connection then numbers messages as the store does now (EXISTS
      // and EXPUNGE it had not been told of), the numbering the client's session is most
      // likely to have.
      const noop = await connection.command('NOOP');
      if (!/^OK\b/i.test(noop.status)) return null;
      command = `FETCH ${request.seq} (${peekItemFor(request.item, length)})`;
    }
    const result = await connection.command(command, length);
    if (!/^OK\b/i.test(result.status)) return null;
    const response = result.untagged.find((r) => / FETCH /i.test(r.text) && r.literals.length > 0);
    return response?.literals.at(-1) ?? null;
  }

  private reset(): void {
    this.connection?.close();
    this.connection = null;
    this.examined = null;
  }

  close(): void {
    this.closed = true;
    this.reset();
  }
}
