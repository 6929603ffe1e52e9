/**
 * The MX's prom-client counters, registered in the registry the caller passes (the
 * gateway exposes one registry for all parts). Without a registry they still count, in a
 * private registry, so the code path is the same.
 */
import { Counter, Registry } from 'prom-client';

export type MessageOutcome = 'accepted' | 'rejected' | 'temp_failed';
export type CopyKind = 'encrypted' | 'passed_through';

export interface MxMetrics {
  messages: Counter<'outcome'>;
  recipientsRejected: Counter<'reason'>;
  copies: Counter<'kind'>;
  registry: Registry;
}

export function createMxMetrics(registry: Registry = new Registry()): MxMetrics {
  return {
    registry,
    messages: new Counter({
      name: 'recrypt_smtp_messages_total',
      help: 'Messages at the end of DATA, by outcome (accepted = 250 after every copy was stored)',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    recipientsRejected: new Counter({
      name: 'recrypt_smtp_recipients_rejected_total',
      help: 'RCPT TO refused, by reason (unknown, relay, unavailable)',
      labelNames: ['reason'],
      registers: [registry],
    }),
    copies: new Counter({
      name: 'recrypt_smtp_copies_total',
      help: 'Copies stored per recipient group: encrypted on arrival, or already S/MIME for the group and stored as is',
      labelNames: ['kind'],
      registers: [registry],
    }),
  };
}
