/** The embedded store's LMTP counters. Labels carry outcomes only, never addresses. */
import { Counter, type Registry } from 'prom-client';

/** stored = 250; rejected = a 5xx reply (unknown user, too large); temp_failed = a 4xx reply. */
export type LmtpDeliveryResult = 'stored' | 'rejected' | 'temp_failed';

export interface LmtpMetrics {
  deliveries: Counter<'result'>;
}

export function createLmtpMetrics(registry: Registry): LmtpMetrics {
  return {
    deliveries: new Counter({
      name: 'recrypt_store_lmtp_deliveries_total',
      help: 'LMTP deliveries into the embedded store, one per recipient, by result (stored, rejected, temp_failed)',
      labelNames: ['result'],
      registers: [registry],
    }),
  };
}

export function lmtpResultOf(responseCode: number): LmtpDeliveryResult {
  return responseCode >= 500 ? 'rejected' : 'temp_failed';
}
