/**
 * `runBridge`: the whole bridge in one process (README.md): open the cache with the
 * passphrase, the account (made from the .p12 on first start), the gateway connection,
 * the first sync, then the local IMAP listeners on 127.0.0.1 (the embedded store's IMAP
 * server over the local view), the local SMTP relay, the periodic sync and the INBOX watch (IDLE).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ensureTlsMaterial } from '../config/tls.js';
import { startImapServer, type ImapServerHandle } from '../store/imap/index.js';
import {
  createAccount,
  decryptKeyOf,
  loadAccount,
  saveAccount,
  type AccountSetup,
  type BridgeAccount,
} from './account.js';
import { AppendEncryption } from './append-encrypt.js';
import { BridgeCache } from './cache.js';
import { openCacheKey } from './cache-key.js';
import { BridgeError } from './errors.js';
import { GroupCertificateSource } from './group-certificate.js';
import { watchInbox, type InboxWatch } from './inbox-watch.js';
import { createBridgeStore } from './local-store.js';
import { startSmtpRelay, type SmtpRelay } from './smtp-relay.js';
import { Sync, type SyncLogger, type SyncProgress } from './sync.js';
import { Upstream } from './upstream.js';

export interface BridgeOptions {
  dataDir: string;
  passphrase: string;
  /** Needed on first start (no account yet); ignored later. */
  setup?: AccountSetup;
  /** Default 127.0.0.1. The bridge serves plaintext mail: never bind it to a public address. */
  host?: string;
  /** STARTTLS (and plain on loopback) IMAP; 0 = any free port. */
  imapPort: number;
  /** Implicit-TLS IMAP; 0 = any free port; null = none. */
  imapsPort: number | null;
  /** Local SMTP submission (when the account has the gateway's submission); 0 = any free port. */
  smtpPort?: number;
  /** No TLS at all on `imapPort` and `smtpPort` (README.md, "Plain loopback"). */
  plainOnly?: boolean;
  /** Between two syncs. */
  pollMs?: number;
  /** How long a verified group certificate is used before the profile is fetched again (group-certificate.ts). */
  groupCertificateMaxAgeMs?: number;
  /** scrypt cost of a new cache key: tests only. */
  scryptCost?: { N: number; r: number; p: number };
  logger?: SyncLogger & { error(details: object, message: string): void };
  /** New messages fetched so far per mailbox (a first sync of a large mailbox takes a while). */
  onProgress?: SyncProgress;
}

export interface RunningBridge {
  account: BridgeAccount;
  /** True when the account was made by this start: the local password has not been shown yet. */
  newAccount: boolean;
  host: string;
  imapPort: number;
  imapsPort: number | null;
  /** Null when the account has no submission service. */
  smtpPort: number | null;
  /** The locally generated certificate clients are asked to trust; null with `plainOnly`. */
  certFile: string | null;
  sync: Sync;
  close(): Promise<void>;
}

const SILENT = { info: () => undefined, warn: () => undefined, error: () => undefined };

export async function runBridge(options: BridgeOptions): Promise<RunningBridge> {
  const logger = options.logger ?? SILENT;
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  const key = await openCacheKey(
    join(options.dataDir, 'key.json'),
    options.passphrase,
    options.scryptCost,
  );
  let account = loadAccount(options.dataDir, key);
  const newAccount = account === null;
  if (account === null) {
    if (options.setup === undefined)
      throw new BridgeError(
        'no-account',
        `no bridge account in ${options.dataDir} yet: give the device's .p12 and gateway settings`,
      );
    account = await createAccount(options.setup);
  }
  const cache = BridgeCache.open(join(options.dataDir, 'cache'), key);
  const upstream = new Upstream(account.upstream);
  const sync = new Sync(cache, upstream, decryptKeyOf(account), logger, options.onProgress);
  const servers: Array<ImapServerHandle | SmtpRelay> = [];
  let watch: InboxWatch | null = null;
  const close = async (): Promise<void> => {
    for (const server of servers) await server.close();
    await watch?.close();
    await sync.stop();
    await upstream.close();
    cache.close();
  };
  try {
    await sync.start(options.pollMs ?? 5000);
    // Saved only once the gateway accepted the device's login and the first sync ran.
    if (newAccount) saveAccount(options.dataDir, key, account);
    watch = watchInbox(
      account.upstream,
      () =>
        void sync
          .syncOnce()
          .catch((err: unknown) =>
            logger.warn({ err: (err as Error).message }, 'bridge sync failed'),
          ),
      logger,
    );
    const host = options.host ?? '127.0.0.1';
    // The master user name cannot be typed as a login: clients log in as the address.
    const master = { user: '\u0000bridge', password: account.localPassword };
    const groups = new GroupCertificateSource({
      address: account.address,
      deviceCertificate: new Uint8Array(Buffer.from(account.certificate, 'base64')),
      ...(account.profileUrl !== undefined ? { baseUrl: account.profileUrl } : {}),
      ...(account.upstream.ca !== undefined ? { ca: account.upstream.ca } : {}),
      ...(options.groupCertificateMaxAgeMs !== undefined
        ? { maxAgeMs: options.groupCertificateMaxAgeMs }
        : {}),
      logger,
    });
    const store = createBridgeStore(
      account.address,
      sync,
      upstream,
      new AppendEncryption(groups, logger),
    );
    const common = { store, host, master, allowUserLogin: true, logger };
    const tls =
      options.plainOnly === true
        ? null
        : await ensureTlsMaterial(options.dataDir, undefined, new Date(), 'localhost');
    const imap = await startImapServer({
      ...common,
      port: options.imapPort,
      ...(tls !== null ? { tls: { key: tls.key, cert: tls.cert } } : {}),
    });
    servers.push(imap);
    let imapsPort: number | null = null;
    if (tls !== null && options.imapsPort !== null) {
      const imaps = await startImapServer({
        ...common,
        port: options.imapsPort,
        tls: { key: tls.key, cert: tls.cert, implicit: true },
      });
      servers.push(imaps);
      imapsPort = imaps.port;
    }
    let smtpPort: number | null = null;
    if (account.submission !== undefined) {
      const relay = await startSmtpRelay({
        host,
        port: options.smtpPort ?? 0,
        tls: tls === null ? null : { key: tls.key, cert: tls.cert },
        user: account.address,
        localPassword: account.localPassword,
        upstream: { ...account.submission, password: account.upstream.password },
      });
      servers.push(relay);
      smtpPort = relay.port;
    }
    return {
      account,
      newAccount,
      host: imap.host,
      imapPort: imap.port,
      imapsPort,
      smtpPort,
      certFile: tls?.certFile ?? null,
      sync,
      close,
    };
  } catch (error) {
    await close().catch(() => undefined);
    throw error;
  }
}
