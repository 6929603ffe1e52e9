/**
 * What changes when `startGateway` runs as one worker of several processes
 * (docs/deployment.md "Several processes on one machine"): the mail store is the
 * primary's, the outbound queue only takes jobs (the primary delivers them), the own
 * certificate is checked by the primary, and /readyz also says whether every worker runs.
 * Also the messages the primary and its workers exchange over cluster IPC.
 */
import type { Registry } from 'prom-client';
import type { GatewayConfig } from '../config/schema.js';
import type { MailStoreEndpoints } from './mail-store.js';

export interface GatewayRole {
  kind: 'worker';
  /** The embedded store the primary runs; absent with Dovecot (each worker reaches it). */
  mailStore?: MailStoreEndpoints & { embeddedPorts?: { storeImap: number } };
  /** Served at /metrics instead of this process's own registry: every worker's series. */
  metrics?: Registry;
  /** Added to the operator listener's /readyz checks. */
  readinessChecks?: Record<string, () => Promise<void>>;
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
  | { type: 'metrics'; id: number; text?: string; error?: string };

export type WorkerMessage =
  | { type: 'hello' }
  | { type: 'ready'; ports: Record<string, number> }
  | { type: 'failed'; message: string }
  /** Asks for every worker's metrics (the primary gathers them, prom-client's cluster aggregation). */
  | { type: 'metrics'; id: number };
