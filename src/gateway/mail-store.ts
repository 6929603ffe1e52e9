/**
 * The mail store the gateway delivers to and the proxy reads from: a configured Dovecot
 * (its IMAP, LMTP and master user), or the embedded store started in this process (IMAP on
 * loopback, LMTP on a Unix socket in the data directory, docs/architecture.md).
 */
import { join } from 'node:path';
import type { Registry } from 'prom-client';
import type { GatewayConfig } from '../config/schema.js';
import type { Logger } from '../config/logger.js';
import type { KeyStore } from '../keystore/index.js';
import type { LmtpEndpoint } from '../smtp/lmtp-delivery.js';
import { storedSizeBound } from '../smtp/stored-size.js';
import { createStoreImapMetrics } from '../store/imap/metrics.js';
import { startImapServer, type ImapServerHandle } from '../store/imap/server.js';
import { createLmtpMetrics, startLmtpServer } from '../store/lmtp/index.js';
import { createMaildirStore } from '../store/maildir/index.js';
import { unixSocketPath } from './data-dir.js';
import { provisioningStore } from './provisioning-store.js';
import { loadOrCreateSecretFile, readSecretFile, MASTER_SECRET_FILE } from './secrets.js';
import { StartupError, causeChain } from './startup-errors.js';

export interface MailStoreEndpoints {
  imap: { host: string; port: number; tls: boolean };
  lmtp: LmtpEndpoint;
  master: { user: string; password: string };
  close(): Promise<void>;
}

/** The embedded store's master user; Dovecot's is configured. */
const EMBEDDED_MASTER_USER = 'recrypt-gateway';

export async function startMailStore(
  config: GatewayConfig,
  dataDir: string,
  keyStore: KeyStore,
  logger: Logger,
  metrics: Registry,
): Promise<MailStoreEndpoints & { embeddedPorts?: { storeImap: number } }> {
  const settings = config.mailStore;
  if (settings.kind === 'dovecot') {
    const password =
      settings.master.passwordFile !== undefined
        ? readSecretFile(settings.master.passwordFile, 'mailStore.master.passwordFile')
        : settings.master.password;
    if (password === undefined) throw new Error('mailStore.master: set password or passwordFile');
    return {
      imap: settings.imap,
      lmtp: settings.lmtp,
      master: { user: settings.master.user, password },
      close: async () => undefined,
    };
  }
  const master = {
    user: EMBEDDED_MASTER_USER,
    password: loadOrCreateSecretFile(join(dataDir, MASTER_SECRET_FILE)),
  };
  const maildir = provisioningStore(
    await createMaildirStore({
      root: join(dataDir, 'mail'),
      maxMessageSize: storedSizeBound(config.smtp.maxMessageBytes),
    }),
    keyStore,
  );
  const lmtpSocket = unixSocketPath(dataDir, settings.lmtpSocket, 'mailStore.lmtpSocket');
  const lmtp = await startLmtpServer({
    store: maildir,
    path: lmtpSocket,
    // The MX's encrypted copy of a message of smtp.maxMessageBytes must fit (src/smtp/stored-size.ts).
    maxSize: storedSizeBound(config.smtp.maxMessageBytes),
    logger,
    metrics: createLmtpMetrics(metrics),
  }).catch((error: unknown) => {
    throw new StartupError(`mailStore.lmtpSocket ${lmtpSocket}: ${causeChain(error)}`);
  });
  let imap: ImapServerHandle;
  try {
    imap = await startImapServer({
      store: maildir,
      host: settings.host,
      port: settings.imapPort,
      master,
      logger,
      metrics: createStoreImapMetrics(metrics),
    });
  } catch (error) {
    await lmtp.close();
    throw error;
  }
  return {
    imap: { host: settings.host, port: imap.port, tls: false },
    lmtp: { path: lmtpSocket },
    master,
    embeddedPorts: { storeImap: imap.port },
    close: async () => {
      await imap.close();
      await lmtp.close();
      await maildir.close();
    },
  };
}
