/**
 * A session's device login (README, "Login and limits"): a per-IP slot for the check, the
 * backoff of the client's IP and of its account, the credential, then the session
 * registered for revocations and the device re-read (`stillActive`: a revocation that
 * completed during the check fails the login, one that completes later reaches the
 * registered session), and only then the master login upstream. Every answer to the
 * client is written here: `OK [CAPABILITY …]`, or `NO [code]` with generic text (the log
 * gets the detail, neither a secret).
 */
import type { Logger } from 'pino';
import { filterCapabilities } from './capabilities.js';
import { ImapProxyError } from './errors.js';
import { authenticateIdentity, type LoginIdentity } from './login-identity.js';
import type { AuthenticatedDevice } from './ports.js';
import type { SessionEnvironment } from './session.js';
import { UpstreamConnection } from './upstream.js';

const MAX_LOGIN_FAILURES = 3;

/** What a login needs from its session (session.ts). */
export interface LoginHost {
  readonly env: SessionEnvironment;
  readonly remoteAddress: string;
  readonly log: Logger;
  /** True once the session has ended; a login that sees it stops. */
  ended(): boolean;
  /** Resolves after `ms`, or as soon as the session ends. */
  wait(ms: number): Promise<void>;
  write(text: string): void;
  bye(text: string): void;
  /** Takes `device` as the session's and registers it; false: over the account's cap. */
  register(device: AuthenticatedDevice): boolean;
  /** Undoes `register`: unregistered, no device. */
  forget(): void;
  /** Logged in: the relay starts (after the `OK` was written). */
  loggedIn(device: AuthenticatedDevice, upstream: UpstreamConnection): void;
}

export class SessionLogin {
  private failures = 0;

  constructor(private readonly host: LoginHost) {}

  /** One LOGIN or AUTHENTICATE, answered; the session stays paused until it resolves. */
  async run(tag: string, who: LoginIdentity, password: string): Promise<void> {
    const host = this.host;
    const { env, log } = host;
    const directory = env.directory;
    const account = directory.accountOf?.(who.member) ?? who.member.trim().toLowerCase();
    let release: (() => void) | null = await env.throttle.acquire(host.remoteAddress);
    try {
      if (host.ended()) return;
      const delay = await env.throttle.delayFor(host.remoteAddress, account);
      if (delay > 0) log.info({ delayMs: delay }, 'login delayed after failed attempts');
      // A session that ends while it waits gives its slot back at once.
      if (delay > 0) await host.wait(delay);
      if (host.ended()) return;
      const device = await authenticateIdentity(directory, who, password);
      if (device === null) return await this.failed(tag, account);
      if (!host.register(device)) {
        env.metrics?.logins.inc({ result: 'limit' });
        log.info({ address: device.address }, 'too many sessions for this account and IP');
        host.write(`${tag} NO [LIMIT] Too many connections for this account from your address\r\n`);
        return host.bye('Too many connections');
      }
      // Registered first, then re-checked: a revocation that completed while the credential
      // was checked shows here, one that completes later reaches this session.
      if (!((await directory.stillActive?.(device)) ?? true)) {
        host.forget();
        return await this.failed(tag, account);
      }
      release();
      release = null;
      if (host.ended()) return;
      await env.throttle.recordSuccessShared(account);
      const storeUser = device.archive?.mailbox ?? device.address;
      const upstream = await UpstreamConnection.open(env.upstream, env.master, storeUser);
      if (host.ended()) {
        upstream.close();
        return;
      }
      env.metrics?.logins.inc({ result: 'ok' });
      const archive = device.archive?.list;
      log.info({ address: device.address, device: device.deviceId, archive }, 'logged in');
      const capabilities = filterCapabilities(upstream.capabilities, true).join(' ');
      host.write(`${tag} OK [CAPABILITY ${capabilities}] Logged in\r\n`);
      host.loggedIn(device, upstream);
    } catch (error) {
      host.forget();
      if (error instanceof ImapProxyError) {
        env.metrics?.logins.inc({ result: 'unavailable' });
        log.warn({ err: error.message }, 'login could not complete');
        host.write(`${tag} NO [${error.code}] ${error.clientText}\r\n`);
      } else {
        log.error({ err: (error as Error).message }, 'login failed unexpectedly');
        host.write(`${tag} NO [UNAVAILABLE] Service temporarily unavailable\r\n`);
      }
    } finally {
      release?.();
    }
  }

  private async failed(tag: string, account: string): Promise<void> {
    const { env, log } = this.host;
    // Counted (in every process, when shared) before the client hears the answer.
    await env.throttle.recordFailureShared(this.host.remoteAddress, account);
    env.metrics?.logins.inc({ result: 'failed' });
    log.info('device login failed');
    this.host.write(`${tag} NO [AUTHENTICATIONFAILED] Authentication failed\r\n`);
    if (++this.failures >= MAX_LOGIN_FAILURES) this.host.bye('Too many failed logins');
  }
}
