/**
 * `runBridge`: the whole bridge in one process (README.md): the data directory locked
 * (data-dir-lock.ts: one bridge per directory), then the cache opened with the
 * passphrase, the account (made from the .p12 on first start, updated by later starts'
 * settings), the gateway connection (its folder list: the login is checked before
 * anything is saved), then the local IMAP listeners on 127.0.0.1 (the embedded store's
 * IMAP server over the local view) and the local SMTP relay, and only then the first
 * sync, so clients are served while it runs; then the periodic sync and the folder
 * watches (IDLE).
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
  updateAccount,
  type AccountSetup,
  type AccountUpdate,
  type BridgeAccount,
} from './account.js';
import { AppendEncryption } from './append-encrypt.js';
import { BridgeCache } from './cache.js';
import { openCacheKeyWith } from './cache-key.js';
import { lockDataDir, type DataDirLock } from './data-dir-lock.js';
import { BridgeError } from './errors.js';
import { GroupCertificateSource, sealedGroupStore } from './group-certificate.js';
import type { Keyring } from './keyring.js';
import { FolderWatches, watchOrder } from './folder-watch.js';
import { createBridgeStore } from './local-store.js';
import { startSmtpRelay, type SmtpRelay } from './smtp-relay.js';
import { Sync, type SyncLogger, type SyncProgress } from './sync.js';
import { Upstream, type UpstreamSettings } from './upstream.js';

export interface BridgeOptions {
  dataDir: string;
  /** Or how to ask for it: with `keyring`, asked only when the keyring has no key. */
  passphrase: string | (() => Promise<string>);
  /** Keep the cache key in the OS keyring (cache-key.ts, keyring.ts). */
  keyring?: Keyring;
  /** Needed on first start (no account yet); ignored later. */
  setup?: AccountSetup;
  /** Settings changed on a later start; saved only once the gateway accepted them. */
  update?: AccountUpdate;
  /**
   * Resolve only once the first sync round ended (default true: tests and scripts). The
   * listeners start before it either way; the CLI returns at once and prints the settings.
   */
  waitForFirstSync?: boolean;
  /** Mailboxes watched with IDLE on their own connection (folder-watch.ts); default 4. */
  watches?: number;
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
  /** The first sync round (a failed one is logged, not thrown: the cache is served). */
  firstSync: Promise<void>;
  /** The mailboxes watched with IDLE now (folder-watch.ts). */
  watchedMailboxes(): string[];
  close(): Promise<void>;
}

/** The start's login was refused: said for what the person just typed, not as a revocation. */
function refusedAtStart(settings: UpstreamSettings): BridgeError {
  return new BridgeError(
    'upstream',
    `the gateway at ${settings.host}:${settings.port} refuses the login of ${settings.user}: ` +
      'check the device password (or whether the device was revoked)',
  );
}

const SILENT = { info: () => undefined, warn: () => undefined, error: () => undefined };

export async function runBridge(options: BridgeOptions): Promise<RunningBridge> {
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  // Before anything in it is read: a second bridge on the directory is refused at once.
  const lock = await lockDataDir(options.dataDir);
  try {
    return await startBridge(options, lock);
  } catch (error) {
    lock.release();
    throw error;
  }
}

async function startBridge(options: BridgeOptions, lock: DataDirLock): Promise<RunningBridge> {
  const logger = options.logger ?? SILENT;
  const key = await openCacheKeyWith(join(options.dataDir, 'key.json'), {
    passphrase: options.passphrase,
    ...(options.keyring !== undefined ? { keyring: options.keyring } : {}),
    ...(options.scryptCost !== undefined ? { cost: options.scryptCost } : {}),
    warn: (message) => logger.warn({ dataDir: options.dataDir }, `bridge: ${message}`),
  });
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
  // Only a real change counts: the same password from the environment at every start
  // must not turn an offline start into a failed one.
  const updated =
    !newAccount && options.update !== undefined ? updateAccount(account, options.update) : account;
  const changed = JSON.stringify(updated) !== JSON.stringify(account);
  account = updated;
  const settings = account.upstream;
  const cache = BridgeCache.open(join(options.dataDir, 'cache'), key);
  const { messagesDropped, orphanFilesRemoved } = cache.repairedAtOpen;
  if (messagesDropped + orphanFilesRemoved > 0)
    logger.info(
      { messagesDropped, orphanFilesRemoved },
      'bridge cache repaired at open (after a crash or power loss)',
    );
  const servers: Array<ImapServerHandle | SmtpRelay> = [];
  const watches = new FolderWatches(
    settings,
    (name) => sync.syncMailboxSoon(name),
    logger,
    options.watches,
  );
  let checked = false;
  // The gateway refuses the device (revoked, password changed): stop, and tell every client.
  const upstream = new Upstream(settings, (refusal) => {
    if (checked) logger.error({ gateway: settings.host }, `bridge stopped: ${refusal.message}`);
    sync.halt(refusal.message);
    void watches.close();
  });
  const sync = new Sync(cache, upstream, decryptKeyOf(account), logger, options.onProgress);
  const close = async (): Promise<void> => {
    try {
      for (const server of servers) await server.close();
      await watches.close();
      await sync.stop();
      await upstream.close();
      cache.close();
    } finally {
      // The cache is written for the last time: another bridge may open it now.
      lock.release();
    }
  };
  try {
    try {
      // The folder list first: it checks the login, and INBOX exists before clients come.
      await sync.syncFolders();
    } catch (error) {
      // A first start or new settings must work before they are saved; a later start
      // serves the cache even when the gateway is unreachable or refuses the device.
      if (newAccount || changed)
        throw error instanceof BridgeError && error.code === 'refused'
          ? refusedAtStart(settings)
          : error;
      logger.warn({ err: (error as Error).message }, 'bridge cannot reach the gateway');
    }
    checked = true;
    if (upstream.refused)
      logger.error({ gateway: settings.host }, 'bridge stopped: the gateway refuses the device');
    if (newAccount || changed) saveAccount(options.dataDir, key, account);
    const host = options.host ?? '127.0.0.1';
    // The master user name cannot be typed as a login: clients log in as the address.
    const master = { user: '\u0000bridge', password: account.localPassword };
    const groups = new GroupCertificateSource({
      address: account.address,
      deviceCertificate: new Uint8Array(Buffer.from(account.certificate, 'base64')),
      ...(account.profileUrl !== undefined ? { baseUrl: account.profileUrl } : {}),
      ...(account.upstream.ca !== undefined ? { ca: account.upstream.ca } : {}),
      store: sealedGroupStore(join(options.dataDir, 'group.bin'), key),
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
    // Listeners are up: the first sync runs while clients are served (messages appear as
    // they are fetched), and the watches follow the mailboxes clients open.
    const firstSync = sync.start(options.pollMs ?? 5000);
    let rewatch: NodeJS.Timeout | null = null;
    const watchNow = (): void => {
      rewatch = null;
      if (!upstream.refused)
        watches.set(
          watchOrder(
            [...sync.mailboxes.values()].map((m) => ({
              name: m.name,
              path: m.state.path,
              sessions: m.sessions,
              lastOpened: m.lastOpened,
              ...(m.state.specialUse !== undefined ? { specialUse: m.state.specialUse } : {}),
            })),
          ),
        );
    };
    sync.onSessionsChanged = () => {
      rewatch ??= setTimeout(watchNow, 200);
    };
    watchNow();
    if (options.waitForFirstSync !== false) await firstSync;
    return {
      account,
      newAccount,
      host: imap.host,
      imapPort: imap.port,
      imapsPort,
      smtpPort,
      certFile: tls?.certFile ?? null,
      sync,
      firstSync,
      watchedMailboxes: () => watches.names,
      close: async () => {
        if (rewatch !== null) clearTimeout(rewatch);
        await close();
      },
    };
  } catch (error) {
    await close().catch(() => undefined);
    throw error;
  }
}
