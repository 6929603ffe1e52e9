/**
 * What changes when `startGateway` runs as one worker of several processes
 * (docs/deployment.md "Several processes on one machine"): the mail store is the
 * primary's, the outbound queue only takes jobs (the primary delivers them), the own
 * certificate is checked by the primary, and /readyz also says whether every worker runs.
 * Also the messages the primary and its workers exchange over cluster IPC.
 */
import type { Registry } from 'prom-client';
import type { RateLimitSettings, RateVerdict } from '../admin/rate-limit.js';
import type { GatewayConfig } from '../config/schema.js';
import type { KeyStoreEvent } from '../keystore/index.js';
import type { MailStoreEndpoints } from './mail-store.js';
import type { PrimaryLink } from './primary-link.js';

export interface GatewayRole {
  kind: 'worker';
  /** The embedded store the primary runs; absent with Dovecot (each worker reaches it). */
  mailStore?: MailStoreEndpoints & { embeddedPorts?: { storeImap: number } };
  /** Served at /metrics instead of this process's own registry: every worker's series. */
  metrics?: Registry;
  /** Added to the operator listener's /readyz checks. */
  readinessChecks?: Record<string, () => Promise<void>>;
  /**
   * The primary over IPC, with the SQLite key store: it relays key-store events between
   * the workers and holds the login failure counts and rate limits (Redis does otherwise).
   */
  primary?: PrimaryLink;
}

/** The embedded store's endpoints as the primary sends them (no `close`: it is the primary's). */
export type StoreEndpoints = Omit<MailStoreEndpoints, 'close'> & {
  embeddedPorts?: { storeImap: number };
};

export type PrimaryMessage =
  | { type: 'setup'; config: GatewayConfig; mailStore?: StoreEndpoints; wanted: number }
  | { type: 'workers'; ready: number; wanted: number }
  | { type: 'reload' }
  | { type: 'stop' }
  | { type: 'metrics'; id: number; text?: string; error?: string }
  /** Asks for this worker's own series (the primary serves them with every other's). */
  | { type: 'metrics-json'; id: number }
  /** Key-store changes made in another process (SQLite key store). */
  | { type: 'keystore-events'; events: KeyStoreEvent[] }
  | { type: 'answer'; id: number; answer?: SharedAnswer; error?: string };

/** What a worker asks the primary, which holds them for all (SQLite key store). */
export type SharedQuestion =
  | { kind: 'login-counts'; keys: string[] }
  | { kind: 'login-record'; keys: string[]; windowMs: number }
  | { kind: 'login-clear'; key: string }
  | { kind: 'rate-take'; scope: string; settings: RateLimitSettings; key: string }
  | { kind: 'held-claim'; key: string; ms: number }
  | { kind: 'held-release'; key: string; token: string };

export type SharedAnswer =
  | { kind: 'login-counts'; counts: number[] }
  | { kind: 'done' }
  | { kind: 'rate-take'; verdict: RateVerdict }
  | { kind: 'held-claim'; token: string | null };

/** One registry's series as prom-client's cluster aggregation takes them. */
export type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

export type WorkerMessage =
  | { type: 'hello' }
  | { type: 'ready'; ports: Record<string, number> }
  | { type: 'failed'; message: string }
  /** Asks for every worker's metrics (the primary gathers them, prom-client's cluster aggregation). */
  | { type: 'metrics'; id: number }
  | { type: 'metrics-json'; id: number; metrics?: MetricsJson; error?: string }
  | { type: 'keystore-events'; events: KeyStoreEvent[] }
  | { type: 'ask'; id: number; question: SharedQuestion }
  /** Outbound jobs this worker just queued in the queue directory, for the primary to send. */
  | { type: 'queued'; jobs: Array<{ id: string; nextAttempt: number }> };
