/**
 * The dedicated pub/sub connection that carries change notifications to this process.
 *
 * Written by hand rather than using ioredis' own resubscription because the store must
 * know *when* the subscription is live again after an interruption: events published
 * meanwhile are lost, so it then emits `resync` and holders of cached state re-check.
 * ioredis' Cluster moves its subscriber between nodes without any public signal, so for
 * a Cluster this uses a plain connection to one node (PUBLISH reaches every node of a
 * cluster) and moves to the next configured node when that one stays unreachable.
 */
import { Redis } from 'ioredis';
import { KeyStoreUnavailableError } from '../errors.js';
import type { KeyStoreConfig } from '../types.js';
import { createRedisClient, type RedisTimeouts } from './connect.js';

const NODE_ATTEMPTS = 3;

export interface SubscriberHandlers {
  onMessage(message: string): void;
  /** The subscription is live again after an interruption. */
  onResync(): void;
  onError(err: Error): void;
}

export class EventSubscriber {
  #conn: Redis | null = null;
  #node = 0;
  #everSubscribed = false;
  #closed = false;
  #firstSubscribed: () => void = () => {};

  constructor(
    private readonly config: Exclude<KeyStoreConfig, { kind: 'sqlite' }>,
    private readonly channel: string,
    private readonly timeouts: RedisTimeouts,
    private readonly handlers: SubscriberHandlers,
  ) {}

  /** Resolves once subscribed; KeyStoreUnavailableError if that takes too long. */
  async start(): Promise<void> {
    const limit =
      this.timeouts.connectMs *
      (this.config.kind === 'redis-cluster' ? this.config.nodes.length : 1) *
      2;
    const subscribed = new Promise<void>((resolve) => {
      this.#firstSubscribed = resolve;
    });
    this.#attach();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new KeyStoreUnavailableError('cannot subscribe to key store events')),
        limit,
      );
    });
    try {
      await Promise.race([subscribed, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  #connection(): Redis {
    if (this.config.kind !== 'redis-cluster') {
      const client = createRedisClient(this.config, 'recrypt-events', this.timeouts) as Redis;
      return client;
    }
    const node = this.config.nodes[this.#node % this.config.nodes.length]!;
    return new Redis({
      host: node.host,
      port: node.port,
      connectTimeout: this.timeouts.connectMs,
      enableOfflineQueue: false,
      lazyConnect: true,
      connectionName: 'recrypt-events',
      // Give up on this node after a few attempts; 'end' then moves to the next one.
      retryStrategy: (times) =>
        times > NODE_ATTEMPTS ? null : Math.min(50 * 2 ** times, this.timeouts.maxBackoffMs),
    });
  }

  #attach(): void {
    if (this.#closed) return;
    const conn = this.#connection();
    this.#conn = conn;
    conn.on('error', (err: Error) => this.handlers.onError(err));
    conn.on('message', (_channel: string, message: string) => this.handlers.onMessage(message));
    conn.on('ready', () => {
      conn.subscribe(this.channel).then(
        () => {
          if (this.#everSubscribed) this.handlers.onResync();
          this.#everSubscribed = true;
          this.#firstSubscribed();
        },
        // The connection dropped again; the next 'ready' retries.
        () => {},
      );
    });
    conn.on('end', () => {
      if (this.#closed || this.#conn !== conn) return;
      this.#node += 1;
      setTimeout(() => this.#attach(), 100).unref();
    });
    conn.connect().catch(() => {});
  }

  close(): void {
    this.#closed = true;
    this.#conn?.disconnect();
    this.#conn = null;
  }
}
