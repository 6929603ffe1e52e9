/**
 * The outbound queue's prom-client series, registered in the registry the caller passes
 * (the gateway exposes one registry for all parts). Labels never carry addresses.
 */
import { Counter, Gauge, Registry } from 'prom-client';

export type DeliveryOutcome = 'sent' | 'deferred' | 'bounced' | 'dropped';

export interface OutboundMetrics {
  registry: Registry;
  queueSize: Gauge;
  /**
   * Where the queue size comes from when the queue is shared by several processes (the
   * Redis queue): read at each scrape, so every process reports the same, whole depth.
   */
  countFrom(source: () => Promise<number>): void;
  deliveries: Counter<'outcome'>;
  quarantined: Counter;
}

export function createOutboundMetrics(registry: Registry = new Registry()): OutboundMetrics {
  let source: (() => Promise<number>) | undefined;
  return {
    registry,
    queueSize: new Gauge({
      name: 'recrypt_outbound_queue_size',
      help: 'Committed outbound jobs (one recipient each) waiting for delivery or a retry; with a Redis key store, the queue every gateway process shares',
      registers: [registry],
      async collect() {
        // A store that cannot be read now reports NaN rather than a stale number.
        if (source !== undefined) this.set(await source().catch(() => Number.NaN));
      },
    }),
    countFrom(next) {
      source = next;
    },
    deliveries: new Counter({
      name: 'recrypt_outbound_deliveries_total',
      help: 'Outbound delivery attempts by outcome: sent (2xx), deferred (4xx, no connection: retried), bounced (failed for good, a DSN went to the return path), dropped (failed for good, null return path)',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    quarantined: new Counter({
      name: 'recrypt_outbound_quarantined_total',
      help: 'Unreadable outbound job files moved aside to queue/quarantine (never sent)',
      registers: [registry],
    }),
  };
}
