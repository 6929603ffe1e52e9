/**
 * The embedded store's IMAP metrics. The command label is the parsed command name (a
 * fixed set, see commands/types.ts) or `unparsed`; nothing from the client's arguments.
 */
import { Counter, Gauge, type Registry } from 'prom-client';

export type CommandResult = 'OK' | 'NO' | 'BAD' | 'BYE';

export interface StoreImapMetrics {
  connections: Gauge;
  commands: Counter<'command' | 'result'>;
}

export function createStoreImapMetrics(registry: Registry): StoreImapMetrics {
  return {
    connections: new Gauge({
      name: 'recrypt_store_imap_connections',
      help: 'Open connections to the embedded store IMAP server',
      registers: [registry],
    }),
    commands: new Counter({
      name: 'recrypt_store_imap_commands_total',
      help: 'Embedded store IMAP commands by name and tagged result (OK, NO, BAD, BYE)',
      labelNames: ['command', 'result'],
      registers: [registry],
    }),
  };
}
