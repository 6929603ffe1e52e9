/**
 * Why the gateway could not start, in one line an operator can act on: which option,
 * which address, what happened. `recrypt start` prints it instead of a stack trace.
 */
import type { GatewayConfig } from '../config/schema.js';

/** A failure to start whose message is written to be shown as it is. */
export class StartupError extends Error {
  override readonly name = 'StartupError';
}

/** The config options that name a listening port, for "smtp.port 2525 is already in use". */
function listeningPorts(config: GatewayConfig): Array<[string, number]> {
  const ports: Array<[string, number]> = [
    ['smtp.port', config.smtp.port],
    ['imap.port', config.imap.port],
    ['imap.starttlsPort', config.imap.starttlsPort],
    ['admin.port', config.admin.port],
    ['operator.port', config.operator.port],
  ];
  if (config.mailStore.kind === 'embedded') {
    ports.push(['mailStore.imapPort', config.mailStore.imapPort]);
  }
  return ports;
}

function causeChain(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  while (current instanceof Error && parts.length < 4) {
    if (current.message !== '' && !parts.includes(current.message)) parts.push(current.message);
    current = current.cause;
  }
  return parts.join(': ') || String(error);
}

/** A one-line description of a start failure (listen errors get the option's name). */
export function describeStartupError(error: unknown, config: GatewayConfig): string {
  if (error instanceof StartupError) return error.message;
  const errno = error as NodeJS.ErrnoException & { port?: number; address?: string };
  if ((errno.code === 'EADDRINUSE' || errno.code === 'EACCES') && typeof errno.port === 'number') {
    const option = listeningPorts(config).find(([, port]) => port === errno.port)?.[0] ?? 'port';
    return errno.code === 'EADDRINUSE'
      ? `${option} ${errno.port} is already in use (on ${errno.address ?? 'this host'}); stop what uses it or choose another port`
      : `${option} ${errno.port}: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)`;
  }
  if (errno.code === 'EADDRNOTAVAIL' && typeof errno.port === 'number') {
    const option = listeningPorts(config).find(([, port]) => port === errno.port)?.[0] ?? 'port';
    return `${option} ${errno.port}: cannot listen on ${errno.address ?? 'that address'} (not an address of this host)`;
  }
  return `cannot start: ${causeChain(error)}`;
}

/** The key store as an operator would name it, without credentials. */
export function describeKeyStore(settings: GatewayConfig['keyStore']): string {
  switch (settings.kind) {
    case 'sqlite':
      return `sqlite ${settings.path}`;
    case 'redis':
      return `redis ${settings.url.replace(/\/\/[^@/]*@/, '//')}`;
    case 'redis-cluster':
      return `redis cluster ${settings.nodes.map((n) => `${n.host}:${n.port}`).join(',')}`;
    case 'redis-sentinel':
      return `redis sentinel ${settings.name} via ${settings.sentinels.map((n) => `${n.host}:${n.port}`).join(',')}`;
  }
}

export { causeChain };
