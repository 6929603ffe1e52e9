/**
 * ioredis clients for the three deployment forms, tuned to fail fast: no offline queue
 * (a command while disconnected fails at once instead of waiting), one retry per
 * request, short connect and command timeouts, and reconnection in the background with
 * a capped backoff so the store recovers by itself when Redis comes back.
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { KeyStoreArgumentError } from '../errors.js';
import type { KeyStoreConfig } from '../types.js';

export type RedisClient = Redis | Cluster;

export interface RedisTimeouts {
  /** Per TCP connection attempt. */
  connectMs: number;
  /** Per command, so a black-holed server cannot hang a caller. */
  commandMs: number;
  /** Cap of the reconnect backoff. */
  maxBackoffMs: number;
}

export const DEFAULT_TIMEOUTS: RedisTimeouts = {
  connectMs: 1000,
  commandMs: 1000,
  maxBackoffMs: 500,
};

function backoff(t: RedisTimeouts): (times: number) => number {
  return (times) => Math.min(50 * 2 ** Math.min(times, 10), t.maxBackoffMs);
}

function nodeOptions(t: RedisTimeouts, connectionName: string): RedisOptions {
  return {
    connectTimeout: t.connectMs,
    commandTimeout: t.commandMs,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    retryStrategy: backoff(t),
    lazyConnect: true,
    connectionName,
  };
}

/**
 * A new client for `config` (not yet connected: call `connect()`). `role` names the
 * connection in CLIENT LIST ('recrypt-commands' or 'recrypt-events').
 */
export function createRedisClient(
  config: Exclude<KeyStoreConfig, { kind: 'sqlite' }>,
  role: string,
  timeouts: RedisTimeouts = DEFAULT_TIMEOUTS,
): RedisClient {
  const options = nodeOptions(timeouts, role);
  switch (config.kind) {
    case 'redis':
      if (!/^rediss?:\/\//.test(config.url))
        throw new KeyStoreArgumentError('redis url must start with redis:// or rediss://');
      return new Redis(config.url, options);
    case 'redis-sentinel':
      return new Redis({
        ...options,
        sentinels: config.sentinels.map((s) => ({ host: s.host, port: s.port })),
        name: config.name,
        sentinelRetryStrategy: backoff(timeouts),
      });
    case 'redis-cluster': {
      // The cluster has its own retry, queue and lazy-connect settings; per-node ones are refused.
      const perNode = { ...options };
      delete perNode.retryStrategy;
      delete perNode.enableOfflineQueue;
      delete perNode.lazyConnect;
      const clusterOptions: ClusterOptions = {
        enableOfflineQueue: false,
        lazyConnect: true,
        clusterRetryStrategy: backoff(timeouts),
        slotsRefreshTimeout: timeouts.connectMs,
        retryDelayOnClusterDown: 100,
        retryDelayOnTryAgain: 100,
        retryDelayOnFailover: 100,
        maxRedirections: 4,
        redisOptions: perNode,
      };
      return new Cluster(
        config.nodes.map((n) => ({ host: n.host, port: n.port })),
        clusterOptions,
      );
    }
  }
}
