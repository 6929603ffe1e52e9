/**
 * A session's two-way relay after login: the client's commands through ClientRelay
 * (client-relay.ts) to the upstream socket with backpressure through `pipe`, upstream's
 * responses through the response rewriter to the client (relay-pump.ts). This
 * wires the two halves together (the tagged replies and `+` lines the client relay waits
 * for, the lines it hides, the selected mailbox), chooses the session's APPEND encryption,
 * read-only rule and plan caches, and counts and logs what the rewriter did with each
 * body. The session (session.ts) decides when it ends.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { ArchiveReadOnly } from './archive.js';
import type { BodyEvent } from './body-literal.js';
import { filterCapabilityLine } from './capabilities.js';
import { ClientRelay } from './client-relay.js';
import { PlanCache, type PlanLookup } from './plan-cache.js';
import { liveFingerprint } from './plan-codec.js';
import { TieredPlans } from './point-cache.js';
import type { AuthenticatedDevice } from './ports.js';
import { PrefixFetcher } from './prefix-fetcher.js';
import { RelayPump } from './relay-pump.js';
import { SelectionTracker } from './selection.js';
import type { SessionEnvironment } from './session.js';
import type { UpstreamConnection } from './upstream.js';

/** What the relay needs from its session. */
export interface RelayHost {
  readonly env: SessionEnvironment;
  readonly log: Logger;
  /** True once the session is closing or closed: upstream's end is then expected. */
  ending(): boolean;
  /** Ends the session now with `* BYE text` (null: upstream already said BYE). */
  bye(text: string | null): void;
}

export class SessionRelay {
  /** Client → upstream. */
  readonly client: ClientRelay;
  /** Upstream → client. */
  readonly pump: RelayPump;
  /** The side connection for partial fetches' plans (opened on first use). */
  readonly fetcher: PrefixFetcher;
  private upstreamSaidBye = false;

  constructor(
    private readonly host: RelayHost,
    device: AuthenticatedDevice,
    private readonly upstream: UpstreamConnection,
    clientSocket: Socket,
  ) {
    const { env, log } = host;
    const selection = new SelectionTracker();
    // A list archive is shared by every member: read-only, so nothing is APPENDed to it.
    const archive = device.archive === undefined ? null : new ArchiveReadOnly();
    const literalPlus = upstream.capabilities.some((c) => c.toUpperCase() === 'LITERAL+');
    const encryptor =
      env.appendEncryptorFor !== undefined && device.groupCertificate !== undefined && literalPlus
        ? env.appendEncryptorFor(device.groupCertificate, device.address)
        : undefined;
    if (env.appendEncryptorFor !== undefined && encryptor === undefined && archive === null) {
      log.warn('APPEND encryption unavailable (no group certificate or no LITERAL+ upstream)');
    }
    let pumpRef: RelayPump | null = null;
    const client = new ClientRelay(selection, {
      onRefused: (name) => log.info({ command: name }, 'refused command'),
      ...(encryptor === undefined ? {} : { encryptor }),
      ...(archive === null ? {} : { readOnly: archive }),
      inject: (bytes) => pumpRef?.rewriter.inject(bytes),
      onFatal: (text) => host.bye(text),
    });
    const storeUser = device.archive?.mailbox ?? device.address;
    const fetcher = new PrefixFetcher(env.upstream, env.master, storeUser);
    const metrics = env.metrics;
    const pump = new RelayPump(
      {
        transform: env.transformFor(device.keys),
        cache: plansFor(env, device, storeUser),
        selection: () => selection.current(),
        fetchPrefix: (request) => fetcher.fetch(request),
        onTextLine: (line) => {
          selection.responseLine(line);
          client.upstreamLine(line);
          if (/^\* BYE\b/i.test(line)) this.upstreamSaidBye = true;
        },
        rewriteTextLine: (line) =>
          client.takeHiddenLine()
            ? null
            : archive === null
              ? filterCapabilityLine(line)
              : archive.responseLine(filterCapabilityLine(line)),
        onBody: (event) => onBody(env, log, event),
      },
      upstream.socket,
      clientSocket,
      {
        recycle: (chunk) => upstream.recycle(chunk),
        ...(metrics === undefined
          ? {}
          : { onOutput: (bytes: number) => metrics.bytes.inc({ direction: 'to_client' }, bytes) }),
      },
    );
    pumpRef = pump;
    this.client = client;
    this.pump = pump;
    this.fetcher = fetcher;
  }

  /**
   * Starts relaying: `socket` is the client's, paused and with no data listener left;
   * `pending` what the client sent after its login command, in the same reads.
   */
  start(socket: Socket, pending: Buffer): void {
    const { log, env } = this.host;
    const { client, pump } = this;
    const metrics = env.metrics;
    const upstreamSocket = this.upstream.socket;
    pump.on('error', (error) => {
      log.error({ err: error.message }, 'response rewriter failed');
      this.host.bye('Internal error');
    });
    const leftover = this.upstream.detach(pump.feed);
    upstreamSocket.on('error', (error) =>
      log.warn({ err: error.message }, 'upstream socket error'),
    );
    // 'close' too: a reset connection closes without 'end'.
    upstreamSocket.once('end', () => pump.upstreamEnd());
    upstreamSocket.once('close', () => pump.upstreamEnd());
    if (metrics !== undefined) {
      client.on('data', (chunk: Buffer) =>
        metrics.bytes.inc({ direction: 'to_upstream' }, chunk.length),
      );
    }
    pump.once('end', () => {
      if (this.host.ending()) return;
      if (!this.upstreamSaidBye) log.warn('upstream closed the session');
      this.host.bye(this.upstreamSaidBye ? null : 'Mail store connection closed');
    });
    if (leftover.length > 0) pump.feed(leftover);
    if (upstreamSocket.readableEnded || upstreamSocket.destroyed) pump.upstreamEnd();
    client.pipe(upstreamSocket, { end: false });
    if (pending.length > 0) client.write(pending);
    socket.pipe(client, { end: false });
    socket.resume();
  }
}

/** The session's plan cache, over the point cache for this device when there is one. */
function plansFor(
  env: SessionEnvironment,
  device: AuthenticatedDevice,
  storeUser: string,
): PlanLookup {
  const own = new PlanCache();
  if (env.pointCache === undefined) return own;
  return new TieredPlans(own, env.pointCache, {
    owner: device.address.toLowerCase(),
    device: device.deviceId,
    storeUser,
    fingerprint: liveFingerprint(device.keys),
  });
}

function onBody(env: SessionEnvironment, log: Logger, event: BodyEvent): void {
  env.metrics?.bodies.inc({ result: event.result, reason: event.reason ?? '' });
  if (event.reason === 'invalid-point') {
    log.warn(
      { section: event.item.section },
      'originator point not on P-256: body passed unchanged',
    );
  } else if (event.result === 'unresolved') {
    log.warn(
      { section: event.item.section, origin: event.item.origin },
      'partial body could not be planned: passed unchanged',
    );
  } else {
    log.debug({ result: event.result, reason: event.reason }, 'body');
  }
}
