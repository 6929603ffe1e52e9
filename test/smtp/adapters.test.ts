/**
 * The MX wired to the real modules through src/smtp/adapters: the key store (SQLite, and
 * Redis stopped → 451 at RCPT) as the recipient directory and the recryption core's
 * wrapMessage as the encryptor, delivering into a real Dovecot. Read back over IMAP and
 * opened with `openssl cms -decrypt` and the group key.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type KeyStore, GatewayKey, openKeyStore } from '../../src/keystore/index.js';
import { recipientIdOf } from '../../src/recrypt/index.js';
import { keyStoreDirectory } from '../../src/smtp/adapters/keystore-directory.js';
import { recryptEncryptor } from '../../src/smtp/adapters/recrypt-encryptor.js';
import { lmtpDelivery } from '../../src/smtp/lmtp-delivery.js';
import { type MxServer, startMxServer } from '../../src/smtp/mx-server.js';
import { requireBinary } from '../helpers/binaries.js';
import { type Dovecot, startDovecot } from '../helpers/dovecot.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { fixtureDnsResolver } from '../helpers/smtp-fixture-dns.js';
import { fixtureMessage } from '../helpers/smtp-harness.js';
import { fetchAllRaw } from '../helpers/smtp-imap-read.js';
import {
  type OpensslGroup,
  makeOpensslGroup,
  opensslDecrypt,
} from '../helpers/smtp-openssl-encryptor.js';
import { headerBlock } from '../helpers/smtp-readback.js';
import { sendWithNodemailer } from '../helpers/smtp-senders.js';
import { SmtpWire } from '../helpers/smtp-wire.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir('recrypt-mx-adapters-');
let dovecot: Dovecot;
let redis: RedisServer | undefined;
let sqliteStore: KeyStore | undefined;
let redisStore: KeyStore | undefined;
const servers: MxServer[] = [];
let group: OpensslGroup;
const dana = 'dana@gateway.test';

async function enrol(store: KeyStore, address: string, certificate: OpensslGroup): Promise<void> {
  await store.addUser({ address });
  const token = await store.createEnrolmentToken(address, 60_000);
  const spki = execFileSync(requireBinary('openssl'), [
    'pkey',
    '-in',
    certificate.keyPath,
    '-pubout',
    '-outform',
    'DER',
  ]);
  await store.enrol(address, token, {
    ownerCaCertificate: certificate.certDer,
    groupCertificate: certificate.certDer,
    groupId: Buffer.from(recipientIdOf(certificate.certDer)).toString('hex'),
    ownerKeySpki: new Uint8Array(spki),
  });
}

async function mxFor(
  store: KeyStore,
  localDomains: string[],
  extra: {
    aliases?: Record<string, string>;
    postmaster?: string;
    pendingRecipientGraceMs?: number;
  } = {},
): Promise<MxServer> {
  const { pendingRecipientGraceMs, ...directoryExtra } = extra;
  const mx = await startMxServer({
    ...(pendingRecipientGraceMs !== undefined ? { pendingRecipientGraceMs } : {}),
    port: 0,
    banner: 'adapters',
    hostname: 'mx.gateway.test',
    maxSize: 10 * 1024 * 1024,
    localDomains,
    directory: keyStoreDirectory({ keyStore: store, localDomains, ...directoryExtra }),
    encryptor: recryptEncryptor({ hideSubject: true }),
    delivery: lmtpDelivery({ host: '127.0.0.1', port: dovecot.lmtpPort }),
    dnsResolver: fixtureDnsResolver(),
    directoryTimeoutMs: 5_000,
  });
  servers.push(mx);
  return mx;
}

/** Sends the multipart fixture to `to` through `mx`; returns it and what dana's mailbox holds of it. */
async function sendAndFetch(
  mx: MxServer,
  to: string,
  label: string,
): Promise<{ original: Buffer; stored: Buffer[] }> {
  const messageId = `${label}.${randomBytes(5).toString('hex')}@sender.example`;
  const original = fixtureMessage('multipart.eml', 'adapters', messageId);
  const result = await sendWithNodemailer(
    mx.port,
    { from: 'someone@sender.example', to: [to] },
    original,
    { tls: false },
  );
  expect(result.ok, result.response).toBe(true);
  const stored = (
    await fetchAllRaw(
      {
        port: dovecot.imapPort,
        masterUser: dovecot.masterUser,
        masterPassword: dovecot.masterPassword,
      },
      dana,
    )
  ).filter((message) => headerBlock(message).includes(messageId));
  expect(stored).toHaveLength(1);
  return { original, stored };
}

async function rcpt(mx: MxServer, address: string): Promise<string> {
  const wire = await SmtpWire.open(mx.port);
  try {
    await wire.reply();
    await wire.command('EHLO client.example');
    await wire.command('MAIL FROM:<someone@sender.example>');
    return await wire.command(`RCPT TO:<${address}>`);
  } finally {
    wire.close();
  }
}

beforeAll(async () => {
  dovecot = await startDovecot();
  group = makeOpensslGroup(tmp.path, 'dana');
  sqliteStore = await openKeyStore(
    { kind: 'sqlite', path: join(tmp.path, 'keys.sqlite') },
    { gatewayKey: GatewayKey.generate() },
  );
  await enrol(sqliteStore, dana, group);
  await sqliteStore.addUser({ address: 'erin@gateway.test' });
});

afterAll(async () => {
  for (const mx of servers) await mx.close();
  await (sqliteStore as { close?: () => Promise<void> | void } | undefined)?.close?.();
  await (redisStore as { close?: () => Promise<void> | void } | undefined)?.close?.();
  await redis?.dispose();
  await dovecot?.remove();
  tmp.remove();
});

describe('MX with the key store and the recryption core', () => {
  it("RCPT decisions from the key store; local domains default to the users' domains", async () => {
    const mx = await mxFor(sqliteStore!, []);
    expect(await rcpt(mx, dana)).toMatch(/^250 2\.1\.5 /);
    expect(await rcpt(mx, 'dana@GATEWAY.test')).toMatch(/^250 2\.1\.5 /);
    expect(await rcpt(mx, 'nobody@gateway.test')).toMatch(/^550 5\.1\.1 /);
    expect(await rcpt(mx, 'dana@elsewhere.example')).toMatch(/^550 5\.7\.1 /);
    // Known but not enrolled: no group certificate to encrypt to, so "try later"…
    expect(await rcpt(mx, 'erin@gateway.test')).toMatch(/^450 4\.2\.1 /);
  });

  it('a user who never enrols: 450 during the grace period, 550 5.1.1 after it', async () => {
    const created = (await sqliteStore!.getUser('erin@gateway.test'))!.created;
    const age = Date.now() - created;
    const waiting = await mxFor(sqliteStore!, [], { pendingRecipientGraceMs: age + 3_600_000 });
    expect(await rcpt(waiting, 'erin@gateway.test')).toMatch(/^450 4\.2\.1 .*enrolment pending/);
    const over = await mxFor(sqliteStore!, [], { pendingRecipientGraceMs: Math.max(0, age - 1) });
    expect(await rcpt(over, 'erin@gateway.test')).toMatch(/^550 5\.1\.1 .*never set up/);
  });

  it('postmaster@ and abuse@ of every served domain, and aliases, reach their target user', async () => {
    const unset = await mxFor(sqliteStore!, ['gateway.test', 'other.test']);
    expect(await rcpt(unset, 'postmaster@gateway.test')).toMatch(/^550 5\.1\.1 /);
    expect(await rcpt(unset, 'Postmaster')).toMatch(/^550 5\.1\.1 /);
    const mx = await mxFor(sqliteStore!, ['gateway.test', 'other.test'], {
      postmaster: dana,
      aliases: { 'Info@gateway.test': dana, 'away@gateway.test': 'someone@elsewhere.example' },
    });
    for (const address of [
      'postmaster@gateway.test',
      'PostMaster@other.test',
      'abuse@other.test',
      'info@GATEWAY.test',
      // Without a domain (RFC 5321 §4.1.1.3).
      'Postmaster',
      'postmaster',
    ]) {
      expect(await rcpt(mx, address), address).toMatch(/^250 2\.1\.5 /);
    }
    // Not a served domain, and an alias that would forward elsewhere: refused.
    expect(await rcpt(mx, 'postmaster@elsewhere.example')).toMatch(/^550 5\.7\.1 /);
    expect(await rcpt(mx, 'away@gateway.test')).toMatch(/^550 5\.1\.1 /);
    // An alias to a user who has not enrolled behaves like that user.
    const toPending = await mxFor(sqliteStore!, ['gateway.test'], {
      aliases: { 'help@gateway.test': 'erin@gateway.test' },
    });
    expect(await rcpt(toPending, 'help@gateway.test')).toMatch(/^450 4\.2\.1 /);
  });

  it('mail to postmaster@ is stored for the postmaster user, encrypted to their group', async () => {
    const mx = await mxFor(sqliteStore!, ['gateway.test'], { postmaster: dana });
    for (const address of ['postmaster@gateway.test', 'Postmaster']) {
      const { original, stored } = await sendAndFetch(mx, address, 'postmaster');
      const content = await opensslDecrypt(stored[0]!, group);
      expect(content.subarray(content.length - original.length).equals(original)).toBe(true);
    }
  });

  it('wrapMessage output stored in Dovecot decrypts with openssl to the original; outer Subject hidden', async () => {
    const mx = await mxFor(sqliteStore!, ['gateway.test']);
    const { original, stored } = await sendAndFetch(mx, dana, 'adapter');
    expect(headerBlock(stored[0]!)).toMatch(/^Subject: \[\.\.\.\]$/m);
    const content = await opensslDecrypt(stored[0]!, group);
    expect(content.subarray(content.length - original.length).equals(original)).toBe(true);
    expect(content.subarray(0, content.length - original.length).toString()).toMatch(
      /^Received: from [^]*Authentication-Results: mx\.gateway\.test;/,
    );
  });

  it('Redis key store stopped: 451 4.3.0 at RCPT', async () => {
    redis = await startRedis();
    redisStore = await openKeyStore(
      { kind: 'redis', url: redis.url },
      { gatewayKey: GatewayKey.generate() },
    );
    await enrol(redisStore, dana, group);
    const mx = await mxFor(redisStore, ['gateway.test']);
    expect(await rcpt(mx, dana)).toMatch(/^250 2\.1\.5 /);
    await redis.stop();
    expect(await rcpt(mx, dana)).toMatch(/^451 4\.3\.0 /);
  });
});
