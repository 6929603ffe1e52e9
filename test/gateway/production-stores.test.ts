/**
 * `recrypt start` on the production stores: a real Redis as the key store and a real
 * Dovecot run from the documented config (config/dovecot/dovecot.conf, via
 * test/helpers/dovecot.ts). It starts, /readyz says ready; with Dovecot stopped /readyz
 * names the mail store, with Redis stopped the key store; back up, ready again.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBinary } from '../helpers/binaries.js';
import { startDovecot, type Dovecot } from '../helpers/dovecot.js';
import { startRecrypt, waitFor, type Spawned } from '../helpers/gateway-process.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { freePort } from '../helpers/ports.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir('recrypt-dovecot-gw-');
let dovecot: Dovecot | undefined;
let redis: RedisServer | undefined;
let gateway: Spawned | undefined;
let adminPort = 0;
let operatorPort = 0;

function readyz(): { status: number; body: string } {
  const out = execFileSync(
    'curl',
    [
      '-s',
      '--cacert',
      join(tmp.path, 'data', 'tls', 'cert.pem'),
      '-w',
      '\n%{http_code}',
      `https://127.0.0.1:${operatorPort}/readyz`,
    ],
    { encoding: 'utf8' },
  );
  const cut = out.lastIndexOf('\n');
  return { status: Number(out.slice(cut + 1)), body: out.slice(0, cut) };
}

beforeAll(async () => {
  requireBinary('curl');
  dovecot = await startDovecot();
  redis = await startRedis();
  adminPort = await freePort();
  operatorPort = await freePort();
  writeFileSync(join(tmp.path, 'master.secret'), `${dovecot.masterPassword}\n`, { mode: 0o600 });
  writeFileSync(
    join(tmp.path, 'recrypt.yaml'),
    [
      'dataDir: ./data',
      `smtp: { host: 127.0.0.1, port: ${await freePort()} }`,
      `imap: { host: 127.0.0.1, port: ${await freePort()}, starttlsPort: ${await freePort()} }`,
      `admin: { port: ${adminPort} }`,
      `operator: { port: ${operatorPort} }`,
      `keyStore: { kind: redis, url: "redis://127.0.0.1:${redis.port}" }`,
      'mailStore:',
      '  kind: dovecot',
      `  imap: { host: 127.0.0.1, port: ${dovecot.imapPort} }`,
      `  lmtp: { host: 127.0.0.1, port: ${dovecot.lmtpPort} }`,
      `  master: { user: ${dovecot.masterUser}, passwordFile: ${join(tmp.path, 'master.secret')} }`,
    ].join('\n'),
  );
  gateway = startRecrypt(['--config', join(tmp.path, 'recrypt.yaml')], tmp.path);
  await waitFor('the gateway to answer /readyz', () => {
    if (gateway!.child.exitCode !== null) throw new Error(`gateway exited: ${gateway!.output()}`);
    try {
      return readyz().status !== 0;
    } catch {
      return false;
    }
  });
}, 120_000);

afterAll(async () => {
  await gateway?.stop(5000);
  await dovecot?.remove();
  await redis?.dispose();
  tmp.remove();
});

describe('/readyz with Redis and Dovecot', () => {
  it('is ready while both answer, names the store that does not', async () => {
    expect(readyz()).toEqual({
      status: 200,
      body: JSON.stringify({ status: 'ready', failing: [] }),
    });
    await dovecot!.stop();
    expect(readyz()).toEqual({
      status: 503,
      body: JSON.stringify({ status: 'not ready', failing: ['mailStore'] }),
    });
    await dovecot!.restart();
    await waitFor('ready again', () => readyz().status === 200, 20_000);

    await redis!.stop();
    await waitFor('the key store to be reported', () => readyz().status === 503, 20_000);
    expect(JSON.parse(readyz().body)).toEqual({ status: 'not ready', failing: ['keyStore'] });
    await redis!.start();
    await waitFor('ready again after Redis', () => readyz().status === 200, 30_000);
    expect(gateway!.child.exitCode).toBeNull();
  });
});
