/**
 * The MX test bench: a real Dovecot (LMTP in, IMAP out), a real redis-server behind the
 * recipient directory, the recryption core's encryptor (or openssl's), openssl-made groups (alice, bob; "jürgen" shares a mailbox
 * `juergen` with its own group), the MX on a free port with STARTTLS, logging to a file
 * that the marker test greps. stop() ends every process it started.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import { recryptEncryptor } from '../../src/smtp/adapters/recrypt-encryptor.js';
import { lmtpDelivery } from '../../src/smtp/lmtp-delivery.js';
import { type MxServer, type MxServerOptions, startMxServer } from '../../src/smtp/mx-server.js';
import type { DeliveryTarget, MessageEncryptor } from '../../src/smtp/ports.js';
import { requireBinary } from './binaries.js';
import { type Dovecot, startDovecot } from './dovecot.js';
import { type RedisServer, startRedis } from './redis.js';
import { fixtureDnsResolver, smtpFixturesDir } from './smtp-fixture-dns.js';
import { type OpensslGroup, makeOpensslGroup, opensslEncryptor } from './smtp-openssl-encryptor.js';
import { type RedisDirectory, redisDirectory } from './smtp-redis-directory.js';
import { tempDir } from './tmp.js';

export const LOCAL_DOMAIN = 'gateway.test';
export type EncryptorKind = 'recrypt' | 'openssl';
export const MX_NAME = 'mx.gateway.test';

export interface Harness {
  dovecot: Dovecot;
  redis: RedisServer;
  directory: RedisDirectory;
  groups: { alice: OpensslGroup; bob: OpensslGroup; juergen: OpensslGroup };
  mx: MxServer;
  registry: Registry;
  encryptor: MessageEncryptor;
  delivery: DeliveryTarget;
  /** The MX's log file and the groups' keys live here. */
  dir: string;
  logFile: string;
  tlsCertPath: string;
  /** Restarts the MX with other options (same directory, store and log). */
  restartMx(overrides?: Partial<MxServerOptions>): Promise<void>;
  stop(): Promise<void>;
}

function selfSignedTls(dir: string): { key: string; cert: string; certPath: string } {
  const keyPath = join(dir, 'tls.key');
  const certPath = join(dir, 'tls.crt');
  execFileSync(
    requireBinary('openssl'),
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      keyPath,
      '-out',
      certPath,
      '-days',
      '2',
      '-subj',
      `/CN=${MX_NAME}`,
    ],
    { stdio: 'ignore' },
  );
  return { key: readFileSync(keyPath, 'utf8'), cert: readFileSync(certPath, 'utf8'), certPath };
}

export async function startHarness(
  overrides: Partial<MxServerOptions> = {},
  options: {
    hideSubject?: boolean;
    /** 'recrypt': the recryption core's wrapMessage (production); 'openssl': `openssl cms -encrypt`. */
    encryptor?: EncryptorKind;
    /** Dovecot's directories on tmpfs where there is room (dovecot.ts `inMemory`). */
    inMemory?: boolean;
  } = {},
): Promise<Harness> {
  const tmp = tempDir('recrypt-mx-');
  const cleanups: (() => Promise<void> | void)[] = [() => tmp.remove()];
  const stop = async (): Promise<void> => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  };
  try {
    const dovecot = await startDovecot({ inMemory: options.inMemory === true });
    cleanups.push(() => dovecot.remove());
    const redis = await startRedis();
    cleanups.push(() => redis.dispose());
    const directory = redisDirectory(redis.port, [LOCAL_DOMAIN]);
    cleanups.push(() => directory.close());
    const groups = {
      alice: makeOpensslGroup(tmp.path, 'alice'),
      bob: makeOpensslGroup(tmp.path, 'bob'),
      juergen: makeOpensslGroup(tmp.path, 'juergen'),
    };
    await directory.add(`alice@${LOCAL_DOMAIN}`, 'alice', groups.alice.certDer);
    await directory.add(`bob@${LOCAL_DOMAIN}`, 'bob', groups.bob.certDer);
    await directory.add(`jürgen@${LOCAL_DOMAIN}`, 'juergen', groups.juergen.certDer);
    const tls = selfSignedTls(tmp.path);
    const logFile = join(tmp.path, 'mx.log');
    const logger = pino({ level: 'debug' }, pino.destination({ dest: logFile, sync: true }));
    const registry = new Registry();
    const hideSubject = options.hideSubject ?? true;
    const encryptor =
      (options.encryptor ?? 'recrypt') === 'recrypt'
        ? recryptEncryptor({ hideSubject })
        : opensslEncryptor({ dir: tmp.path, hideSubject });
    const delivery = lmtpDelivery({ host: '127.0.0.1', port: dovecot.lmtpPort, timeoutMs: 10_000 });
    const base: MxServerOptions = {
      port: 0,
      banner: 'recrypt test MX',
      hostname: MX_NAME,
      tls: { key: tls.key, cert: tls.cert },
      maxSize: 20 * 1024 * 1024,
      localDomains: [LOCAL_DOMAIN],
      directory,
      encryptor,
      delivery,
      logger,
      metrics: registry,
      dnsResolver: fixtureDnsResolver(),
      closeTimeoutMs: 15_000,
      ...overrides,
    };
    let mx = await startMxServer(base);
    let mxClosed = false;
    cleanups.push(async () => {
      if (!mxClosed) await mx.close();
    });
    const harness: Harness = {
      dovecot,
      redis,
      directory,
      groups,
      get mx() {
        return mx;
      },
      registry,
      encryptor,
      delivery,
      dir: tmp.path,
      logFile,
      tlsCertPath: tls.certPath,
      async restartMx(more = {}) {
        mxClosed = true;
        await mx.close();
        registry.clear();
        mx = await startMxServer({ ...base, ...more, metrics: registry });
        mxClosed = false;
      },
      stop,
    };
    return harness;
  } catch (error) {
    await stop();
    throw error;
  }
}

/** A fixture message with its placeholders filled in. */
export function fixtureMessage(name: string, marker: string, messageId: string): Buffer {
  return Buffer.from(
    readFileSync(join(smtpFixturesDir, name), 'utf8')
      .replaceAll('{MARKER}', marker)
      .replaceAll('{MSGID}', messageId),
    'utf8',
  );
}

/** The value of a counter (with these labels) in the registry. */
export async function counterValue(
  registry: Registry,
  name: string,
  labels: Record<string, string>,
): Promise<number> {
  const metric = (await registry.getMetricsAsJSON()).find((entry) => entry.name === name);
  const values =
    (metric as { values?: { value: number; labels: Record<string, string> }[] } | undefined)
      ?.values ?? [];
  const match = values.find((value) =>
    Object.entries(labels).every(([key, want]) => value.labels[key] === want),
  );
  return match?.value ?? 0;
}
