/**
 * The outbound queue's prom-client series, registered in the registry the caller passes
 * (the gateway exposes one registry for all parts). Labels never carry addresses.
 */
import { Counter, Gauge, Registry } from 'prom-client';

export type DeliveryOutcome = 'sent' | 'deferred' | 'bounced' | 'dropped';

export interface OutboundMetrics {
  registry: Registry;
  queueSize: Gauge;
  deliveries: Counter<'outcome'>;
  quarantined: Counter;
}

export function createOutboundMetrics(registry: Registry = new Registry()): OutboundMetrics {
  return {
    registry,
    queueSize: new Gauge({
      name: 'recrypt_outbound_queue_size',
      help: 'Committed outbound jobs (one recipient each) waiting for delivery or a retry',
      registers: [registry],
    }),
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
