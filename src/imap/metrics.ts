/** The proxy's prom-client metrics. Labels carry outcomes, never addresses or content. */
import { Counter, Gauge, type Registry } from 'prom-client';

export interface ImapProxyMetrics {
  logins: Counter<'result'>;
  bodies: Counter<'result' | 'reason'>;
  bytes: Counter<'direction'>;
  sessions: Gauge;
  refused: Counter<'reason'>;
}

export function createImapProxyMetrics(registry: Registry): ImapProxyMetrics {
  return {
    logins: new Counter({
      name: 'imap_proxy_logins_total',
      help: 'Device logins by result (ok, failed, unavailable, revoked, limit)',
      labelNames: ['result'],
      registers: [registry],
    }),
    bodies: new Counter({
      name: 'imap_proxy_bodies_total',
      help: 'FETCH body literals by result (recrypted, unchanged, unresolved) and reason',
      labelNames: ['result', 'reason'],
      registers: [registry],
    }),
    bytes: new Counter({
      name: 'imap_proxy_bytes_total',
      help: 'Bytes relayed, by direction (to_client, to_upstream)',
      labelNames: ['direction'],
      registers: [registry],
    }),
    sessions: new Gauge({
      name: 'imap_proxy_sessions',
      help: 'Open client sessions',
      registers: [registry],
    }),
    refused: new Counter({
      name: 'imap_proxy_refused_connections_total',
      help: 'Connections refused over a cap, by reason (server-full, ip-full)',
      labelNames: ['reason'],
      registers: [registry],
    }),
  };
}
