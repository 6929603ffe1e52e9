/**
 * The bridge's one IMAP connection to the gateway's recrypting proxy, logged in as the
 * device (imapflow). Everything that talks to the gateway (the sync, and a client's
 * STORE/EXPUNGE/COPY/MOVE and folder changes) runs through `run`, one operation at a
 * time: the sync and a client's change never interleave on the connection, and a change
 * is never half-applied locally while a sync of the same mailbox is running. A dropped
 * connection is opened again by the next operation.
 *
 * Every wait on the gateway is bounded, because a local client's change waits in the same
 * queue (README.md, "Sync"): a connection the gateway closes settles the operation using
 * it at once, and one that goes silent while an answer is due (the gateway or the network
 * gone without a close) counts as closed after `silenceMs`. Without that bound imapflow
 * waits 5 minutes of silence, and every client command queued behind went unanswered.
 */
import { isIP } from 'node:net';
import {
  ImapFlow,
  type FetchMessageObject,
  type ImapFlowOptions,
  type ListResponse,
} from 'imapflow';
import type { Flag, FlagOperation } from '../store/backend.js';
import { BridgeError } from './errors.js';
import { expandUidSet } from './uid-set.js';
import type { UpstreamWrites } from './local-mailbox.js';

export interface UpstreamSettings {
  host: string;
  port: number;
  /** `implicit`: TLS from the first byte (993); `starttls`: STARTTLS required (143). */
  tls: 'implicit' | 'starttls';
  /** PEM of the CA (or self-signed certificate) to trust for the gateway; default: the system's. */
  ca?: string;
  /** The name to check in the gateway's certificate; default `host`. */
  servername?: string;
  user: string;
  password: string;
}

/** What the sync learns about a mailbox when it selects it. */
export interface SelectedMailbox {
  uidValidity: number;
  uidNext: number;
  exists: number;
  highestModseq?: number;
}

export interface FetchedMessage {
  uid: number;
  flags: Flag[];
  internalDate: Date;
  source: Buffer;
}

/**
 * Silence on the gateway connection, while an answer is due, after which it counts as gone.
 * Above the gateway's longest login delay after failed attempts (30 s, src/imap/throttle.ts),
 * which is silence by design; far below imapflow's 5 minutes.
 */
export const UPSTREAM_SILENCE_MS = 45_000;

/** The gateway's messages are fetched this many at a time (bounds memory per batch). */
const FETCH_BATCH = 50;

function uidSet(uids: number[]): string {
  return uids.join(',');
}

/** imapflow's options for a connection to the gateway as the device. */
export function clientOptions(
  s: UpstreamSettings,
  extra: { disableAutoIdle: boolean },
): ImapFlowOptions {
  // SNI carries names only; an address is checked against the certificate's IP entries.
  const servername = s.servername ?? (isIP(s.host) === 0 ? s.host : undefined);
  return {
    host: s.host,
    port: s.port,
    secure: s.tls === 'implicit',
    ...(s.tls === 'starttls' ? { doSTARTTLS: true } : {}),
    ...(servername !== undefined ? { servername } : {}),
    tls: {
      ...(s.ca !== undefined ? { ca: s.ca } : {}),
      ...(servername !== undefined ? { servername } : {}),
    },
    auth: { user: s.user, pass: s.password },
    logger: false,
    clientInfo: { name: 'recrypt bridge' },
    ...extra,
  };
}

/** What the person is told when the gateway refuses the device (docs/bridge.md). */
export const REFUSED_ADVICE =
  'the gateway refuses this device (revoked, or its password changed); the bridge stopped syncing. ' +
  'New password: restart with `recrypt bridge --device-password-file FILE`; revoked: ' +
  'make a new device (`recrypt device join`) and a new bridge with its .p12';

/** `promise`, or undefined once `ms` passed (the timer does not keep the process alive). */
export function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
    timer.unref();
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

export class Upstream implements UpstreamWrites {
  private client: ImapFlow | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  /** Set once the gateway refused the device's login: nothing is tried again (no lock-outs). */
  private refusal: BridgeError | null = null;
  private closed = false;
  private readonly silenceMs: number;

  /**
   * `onRefused`: called once, when the gateway first refuses the device's login;
   * `silenceMs`: see UPSTREAM_SILENCE_MS (tests make it short).
   */
  constructor(
    private readonly settings: UpstreamSettings,
    private readonly onRefused: (error: BridgeError) => void = () => undefined,
    options: { silenceMs?: number } = {},
  ) {
    this.silenceMs = options.silenceMs ?? UPSTREAM_SILENCE_MS;
  }

  get refused(): boolean {
    return this.refusal !== null;
  }

  /** Runs `operation` after every earlier one has finished. */
  run<T>(operation: (client: ImapFlow) => Promise<T>): Promise<T> {
    const result = this.queue.then(async () => this.settled(await this.connected(), operation));
    this.queue = result.catch(() => undefined);
    return result;
  }

  /**
   * `operation` on `client`, failed at once when the connection closes under it (the
   * gateway's BYE, a cut, the silence bound): the queue never waits on a connection that
   * is gone, whatever the operation was waiting for.
   */
  private settled<T>(client: ImapFlow, operation: (client: ImapFlow) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const gone = (): void =>
        reject(new BridgeError('upstream', 'the gateway connection closed during the operation'));
      client.once('close', gone);
      operation(client)
        .then(resolve, reject)
        .finally(() => client.off('close', gone));
    });
  }

  private async connected(): Promise<ImapFlow> {
    if (this.refusal !== null) throw this.refusal;
    if (this.client?.usable === true) return this.client;
    if (this.closed) throw new BridgeError('upstream', 'the bridge is stopping');
    const s = this.settings;
    // QRESYNC: a later sync learns expunges as VANISHED (EARLIER) with its CHANGEDSINCE
    // fetch (changes.ts), instead of comparing every UID.
    const client = new ImapFlow({
      ...clientOptions(s, { disableAutoIdle: true }),
      qresync: true,
      // The silence bound (header): a command in flight with nothing heard for this long
      // fails and closes the connection; so do the connect and the greeting.
      socketTimeout: this.silenceMs,
      connectionTimeout: this.silenceMs,
      greetingTimeout: this.silenceMs,
    });
    client.on('error', () => undefined);
    try {
      await client.connect();
    } catch (error) {
      client.close();
      const text = (error as { responseText?: string }).responseText ?? (error as Error).message;
      if ((error as { authenticationFailed?: boolean }).authenticationFailed === true) {
        // A tagged NO to the login (imapflow sets this only then): the device itself is refused.
        this.refusal = new BridgeError('refused', REFUSED_ADVICE);
        this.onRefused(this.refusal);
        throw this.refusal;
      }
      throw new BridgeError(
        'upstream',
        `cannot log in to the gateway at ${s.host}:${s.port} as ${s.user}: ${text}`,
      );
    }
    this.client = client;
    return client;
  }

  async listMailboxes(): Promise<ListResponse[]> {
    return this.run((client) => client.list());
  }

  /**
   * Selects `path` and runs `body` with it selected, inside one queued operation. With
   * `reselect`, a mailbox selected already is selected again: imapflow keeps the values of
   * the last SELECT (HIGHESTMODSEQ is not updated after it), and the sync needs today's.
   */
  withMailbox<T>(
    path: string,
    body: (client: ImapFlow, selected: SelectedMailbox) => Promise<T>,
    reselect = false,
  ): Promise<T> {
    return this.run(async (client) => {
      const before = client.mailbox === false ? null : client.mailbox.path;
      const lock = await client.getMailboxLock(path);
      try {
        if (reselect && before === lock.path) await client.mailboxOpen(path);
        const mailbox = client.mailbox;
        if (mailbox === false)
          throw new BridgeError('upstream', `cannot select ${path} on the gateway`);
        const uidValidity = Number(mailbox.uidValidity);
        // A SELECT without UIDVALIDITY would read as a new one: every session ended, the
        // mailbox's cache dropped (sync.ts). It is a broken answer; nothing changes.
        if (!Number.isSafeInteger(uidValidity) || uidValidity <= 0)
          throw new BridgeError('upstream', `the gateway's SELECT of ${path} has no UIDVALIDITY`);
        const selected: SelectedMailbox = {
          uidValidity,
          uidNext: mailbox.uidNext,
          exists: mailbox.exists,
          ...(mailbox.highestModseq !== undefined && mailbox.noModseq !== true
            ? { highestModseq: Number(mailbox.highestModseq) }
            : {}),
        };
        return await body(client, selected);
      } finally {
        lock.release();
      }
    });
  }

  /**
   * The flags of the selected mailbox's messages in the UID range `uids`, by UID (one
   * FETCH response per message there).
   */
  static async flagsOf(client: ImapFlow, uids: string): Promise<Map<number, Flag[]>> {
    const out = new Map<number, Flag[]>();
    const messages = await client.fetchAll(uids, { uid: true, flags: true }, { uid: true });
    for (const m of messages) out.set(m.uid, [...(m.flags ?? [])]);
    return out;
  }

  /**
   * The UIDs of the selected mailbox (within `range`, a UID range, when given), ascending:
   * `UID SEARCH`, with ESEARCH's `RETURN (ALL)` when the gateway offers it (one short line
   * of ranges, where FETCH answers a line per message).
   */
  static async uidsOf(client: ImapFlow, range?: string): Promise<number[]> {
    const query = range === undefined ? { all: true } : { uid: range };
    const found = await client.search(query, { uid: true, returnOptions: ['ALL'] });
    const path = client.mailbox === false ? '' : client.mailbox.path;
    if (found === false || found === undefined)
      throw new BridgeError('upstream', `the gateway refused UID SEARCH in ${path}`);
    if (Array.isArray(found)) return [...new Set(found)].sort((a, b) => a - b);
    const limit = client.mailbox === false ? 0 : client.mailbox.exists;
    const uids = expandUidSet(found.all ?? '', limit);
    if (uids === null)
      throw new BridgeError(
        'upstream',
        `the gateway's UID SEARCH answer in ${path} is not a set of at most ${limit} UIDs`,
      );
    return uids;
  }

  /** The whole messages of `uids` (as the proxy recrypted them for this device), in batches. */
  static async *messagesOf(client: ImapFlow, uids: number[]): AsyncGenerator<FetchedMessage> {
    for (let i = 0; i < uids.length; i += FETCH_BATCH) {
      const batch: FetchMessageObject[] = await client.fetchAll(
        uidSet(uids.slice(i, i + FETCH_BATCH)),
        { uid: true, flags: true, internalDate: true, source: true },
        { uid: true },
      );
      batch.sort((a, b) => a.uid - b.uid);
      for (const m of batch) {
        if (m.source === undefined) continue;
        const date =
          m.internalDate instanceof Date ? m.internalDate : new Date(m.internalDate ?? Date.now());
        yield { uid: m.uid, flags: [...(m.flags ?? [])], internalDate: date, source: m.source };
      }
    }
  }

  // UpstreamWrites

  async setFlags(
    path: string,
    uids: number[],
    operation: FlagOperation,
    flags: Flag[],
  ): Promise<void> {
    await this.withMailbox(path, async (client) => {
      const range = uidSet(uids);
      const ok =
        operation === 'add'
          ? await client.messageFlagsAdd(range, flags, { uid: true })
          : operation === 'remove'
            ? await client.messageFlagsRemove(range, flags, { uid: true })
            : await client.messageFlagsSet(range, flags, { uid: true });
      if (!ok) throw new BridgeError('upstream', `the gateway refused STORE in ${path}`);
    });
  }

  async expunge(path: string, uids: number[]): Promise<void> {
    await this.withMailbox(path, async (client) => {
      const ok = await client.messageDelete(uidSet(uids), { uid: true });
      if (!ok) throw new BridgeError('upstream', `the gateway refused EXPUNGE in ${path}`);
    });
  }

  async copy(
    path: string,
    uids: number[],
    destination: string,
    move: boolean,
  ): Promise<Map<number, number>> {
    return this.withMailbox(path, async (client) => {
      const result = move
        ? await client.messageMove(uidSet(uids), destination, { uid: true })
        : await client.messageCopy(uidSet(uids), destination, { uid: true });
      if (result === false)
        throw new BridgeError(
          'upstream',
          `the gateway refused ${move ? 'MOVE' : 'COPY'} from ${path}`,
        );
      return result.uidMap ?? new Map<number, number>();
    });
  }

  /**
   * Lets the queued operations finish (within the silence bound), logs out (within it
   * too) and closes; from now on nothing connects again. A gateway that does not answer
   * cannot hold up the bridge's stop.
   */
  async close(): Promise<void> {
    this.closed = true;
    await within(this.queue, this.silenceMs);
    const client = this.client;
    this.client = null;
    if (client === null) return;
    await within(
      client.logout().catch(() => undefined),
      this.silenceMs,
    );
    client.close();
  }
}
