/**
 * The gateway side of the CLI tests: after `recrypt init` made a data directory and
 * config, `prepareConfig` moves the public and operator listeners to free loopback ports
 * (and optionally the key store to a throwaway Redis), and `startGatewayFromConfig` opens
 * the real key store and starts both real listeners over TLS from that config, the way
 * `recrypt start` does. Stop it with `close()` in afterAll.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { parse, stringify } from 'yaml';
import { startAdminServer, type AdminServer } from '../../src/admin/server.js';
import { loadConfig } from '../../src/config/load.js';
import type { GatewayConfig } from '../../src/config/schema.js';
import { ensureTlsMaterial } from '../../src/config/tls.js';
import { loadOrCreateGatewayKey, openKeyStore, type KeyStore } from '../../src/keystore/index.js';
import { freePort } from './ports.js';

export async function prepareConfig(
  configFile: string,
  keyStore?: GatewayConfig['keyStore'],
): Promise<number> {
  const port = await freePort();
  const raw = parse(readFileSync(configFile, 'utf8')) as Record<string, Record<string, unknown>>;
  raw['admin'] = { ...raw['admin'], port };
  raw['operator'] = { ...raw['operator'], port: await freePort() };
  if (keyStore !== undefined) raw['keyStore'] = keyStore as unknown as Record<string, unknown>;
  writeFileSync(configFile, stringify(raw));
  return port;
}

export interface TestGateway {
  config: GatewayConfig;
  keyStore: KeyStore;
  /** The public listener (owners); `operator` serves the admin-token routes. */
  admin: AdminServer;
  operator: AdminServer;
  origin: string;
  operatorOrigin: string;
  certFile: string;
  imap: { host: string; port: number; starttlsPort: number };
  close(): Promise<void>;
}

export async function startGatewayFromConfig(
  configFile: string,
  clock?: () => number,
  logger?: Logger,
): Promise<TestGateway> {
  const { config } = loadConfig(configFile, {});
  const gatewayKey = loadOrCreateGatewayKey(config.dataDir);
  const keyStore = await openKeyStore(config.keyStore, { gatewayKey, dataDir: config.dataDir });
  const tls = await ensureTlsMaterial(config.dataDir, config.tls);
  const adminToken = readFileSync(resolve(config.dataDir, config.admin.tokenFile), 'utf8').trim();
  const imap = {
    host: '127.0.0.1',
    port: config.imap.port,
    starttlsPort: config.imap.starttlsPort,
  };
  const shared = {
    host: '127.0.0.1',
    tls: { key: tls.key, cert: tls.cert },
    keyStore,
    adminToken,
    imapSettings: imap,
    ...(clock ? { clock } : {}),
    ...(logger ? { logger } : {}),
  };
  const admin = await startAdminServer({
    ...shared,
    port: config.admin.port,
    audiences: ['public'],
  });
  const operator = await startAdminServer({
    ...shared,
    port: config.operator.port,
    audiences: ['operator'],
  });
  return {
    config,
    keyStore,
    admin,
    operator,
    origin: `https://127.0.0.1:${admin.port}`,
    operatorOrigin: `https://127.0.0.1:${operator.port}`,
    certFile: tls.certFile,
    imap,
    async close() {
      await admin.close();
      await operator.close();
      await keyStore.close();
    },
  };
}
