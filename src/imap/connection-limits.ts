/**
 * Connection caps of the IMAP proxy (docs/threat-model.md, Limits): connections in all,
 * connections per client IP, and logged-in sessions per account and client IP (like
 * Dovecot's mail_max_userip_connections). A connection over a cap gets `* BYE` and is
 * closed; the counts are held here, apart from the sessions, so that the listeners can
 * decide before a session exists.
 */
export interface ConnectionLimitOptions {
  /** Connections open at once, all clients together (default 1000). */
  maxConnections?: number;
  /** Connections open at once from one IP (default 20). */
  maxConnectionsPerIp?: number;
  /** Logged-in sessions of one account from one IP (default 10). */
  maxSessionsPerUserIp?: number;
}

export type Admission = 'ok' | 'server-full' | 'ip-full';

export class ConnectionLimits {
  readonly maxConnections: number;
  readonly maxConnectionsPerIp: number;
  readonly maxSessionsPerUserIp: number;
  private total = 0;
  private readonly perIp = new Map<string, number>();
  private readonly perUserIp = new Map<string, number>();

  constructor(options: ConnectionLimitOptions = {}) {
    this.maxConnections = positive(options.maxConnections ?? 1000, 'maxConnections');
    this.maxConnectionsPerIp = positive(options.maxConnectionsPerIp ?? 20, 'maxConnectionsPerIp');
    this.maxSessionsPerUserIp = positive(
      options.maxSessionsPerUserIp ?? 10,
      'maxSessionsPerUserIp',
    );
  }

  /**
   * Counts a new connection from `ip` if it is within the caps; the release function
   * (idempotent) uncounts it. Over a cap: the reason, and nothing is counted.
   */
  admit(ip: string): { admission: Admission; release: () => void } {
    if (this.total >= this.maxConnections) return { admission: 'server-full', release: noop };
    const count = this.perIp.get(ip) ?? 0;
    if (count >= this.maxConnectionsPerIp) return { admission: 'ip-full', release: noop };
    this.total++;
    this.perIp.set(ip, count + 1);
    return { admission: 'ok', release: once(() => this.decrement(this.perIp, ip, true)) };
  }

  /** Counts a logged-in session of `account` from `ip`; null when that pair is at its cap. */
  session(account: string, ip: string): (() => void) | null {
    const key = `${account}\u0000${ip}`;
    const count = this.perUserIp.get(key) ?? 0;
    if (count >= this.maxSessionsPerUserIp) return null;
    this.perUserIp.set(key, count + 1);
    return once(() => this.decrement(this.perUserIp, key, false));
  }

  /** Connections counted now (tests, metrics). */
  connections(): number {
    return this.total;
  }

  private decrement(map: Map<string, number>, key: string, connection: boolean): void {
    if (connection) this.total--;
    const count = (map.get(key) ?? 1) - 1;
    if (count <= 0) map.delete(key);
    else map.set(key, count);
  }
}

function positive(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`${name} must be a positive integer`);
  }
  return value;
}

function noop(): void {}

function once(run: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    run();
  };
}
