/**
 * The MX delivering into the embedded store's LMTP listener (src/store/lmtp over the
 * Maildir store), with the real key store and recryption core: the stored bytes decrypt
 * with `openssl cms` and the group key to the original; no plaintext marker anywhere in
 * the store's directory or the MX log; store down → 451; an unknown store user → 554.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type KeyStore, GatewayKey, openKeyStore } from '../../src/keystore/index.js';
import { recipientIdOf } from '../../src/recrypt/index.js';
import type { MailStore } from '../../src/store/backend.js';
import { type LmtpServerHandle, startLmtpServer } from '../../src/store/lmtp/index.js';
import { createMaildirStore } from '../../src/store/maildir/index.js';
import { keyStoreDirectory } from '../../src/smtp/adapters/keystore-directory.js';
import { recryptEncryptor } from '../../src/smtp/adapters/recrypt-encryptor.js';
import { lmtpDelivery } from '../../src/smtp/lmtp-delivery.js';
import { type MxServer, startMxServer } from '../../src/smtp/mx-server.js';
import { fixtureDnsResolver } from '../helpers/smtp-fixture-dns.js';
import { fixtureMessage } from '../helpers/smtp-harness.js';
import {
  type OpensslGroup,
  makeOpensslGroup,
  opensslDecrypt,
} from '../helpers/smtp-openssl-encryptor.js';
import { sendWithNodemailer } from '../helpers/smtp-senders.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir('recrypt-mx-store-');
const storeRoot = join(tmp.path, 'store');
const logFile = join(tmp.path, 'mx.log');
const frank = 'frank@gateway.test';
let keyStore: KeyStore;
let store: MailStore;
let lmtp: LmtpServerHandle | undefined;
let mx: MxServer;
let group: OpensslGroup;

async function inbox(user: string): Promise<Uint8Array[]> {
  const userStore = await store.openUser(user);
  const mailbox = await userStore.openMailbox('INBOX', { readOnly: true });
  try {
    return await Promise.all(mailbox.records().map((record) => mailbox.read(record.uid)));
  } finally {
    await mailbox.close();
  }
}

beforeAll(async () => {
  group = makeOpensslGroup(tmp.path, 'frank');
  keyStore = await openKeyStore(
    { kind: 'sqlite', path: join(tmp.path, 'keys.sqlite') },
    { gatewayKey: GatewayKey.generate() },
  );
  for (const address of [frank, 'ghost@gateway.test']) {
    await keyStore.addUser({ address });
    const token = await keyStore.createEnrolmentToken(address, 60_000);
    await keyStore.enrol(address, token, {
      ownerCaCertificate: group.certDer,
      groupCertificate: group.certDer,
      groupId: Buffer.from(recipientIdOf(group.certDer)).toString('hex'),
      ownerKeySpki: group.certDer,
    });
  }
  store = await createMaildirStore({ root: storeRoot });
  // ghost is in the key store but has no mailbox in the store.
  await store.createUser(frank);
  lmtp = await startLmtpServer({ store, port: 0 });
  mx = await startMxServer({
    port: 0,
    banner: 'store',
    hostname: 'mx.gateway.test',
    maxSize: 10 * 1024 * 1024,
    localDomains: ['gateway.test'],
    directory: keyStoreDirectory({ keyStore, localDomains: ['gateway.test'] }),
    encryptor: recryptEncryptor({ hideSubject: true }),
    delivery: lmtpDelivery({ host: '127.0.0.1', port: lmtp.port, timeoutMs: 5_000 }),
    dnsResolver: fixtureDnsResolver(),
    logger: pino({ level: 'debug' }, pino.destination({ dest: logFile, sync: true })),
  });
});

afterAll(async () => {
  await mx?.close();
  await lmtp?.close();
  await store?.close();
  await (keyStore as { close?: () => Promise<void> | void } | undefined)?.close?.();
  tmp.remove();
});

describe('MX → embedded store over LMTP', () => {
  const marker = `STOREMARK${randomBytes(10).toString('hex')}`;

  it('stores the message encrypted; openssl decrypts it to the original', async () => {
    const original = fixtureMessage(
      '8bit.eml',
      marker,
      `store.${randomBytes(4).toString('hex')}@sender.example`,
    );
    const result = await sendWithNodemailer(
      mx.port,
      { from: 'someone@sender.example', to: [frank] },
      original,
      { tls: false },
    );
    expect(result.ok, result.response).toBe(true);
    const messages = await inbox(frank);
    expect(messages).toHaveLength(1);
    const content = await opensslDecrypt(messages[0]!, group);
    expect(content.subarray(content.length - original.length).equals(original)).toBe(true);
  });

  it('the marker is in no file of the store or the MX log', () => {
    const files = readdirSync(tmp.path, { withFileTypes: true, recursive: true })
      .filter((entry) => entry.isFile())
      .map((entry) => join(entry.parentPath, entry.name));
    expect(files).toContain(logFile);
    expect(files.some((file) => file.startsWith(storeRoot))).toBe(true);
    expect(files.filter((file) => readFileSync(file).includes(Buffer.from(marker)))).toEqual([]);
  });

  it('a user the store does not have: permanent 554 5.2.0 (the store said 550 after our 250 at RCPT)', async () => {
    const result = await sendWithNodemailer(
      mx.port,
      { from: 'someone@sender.example', to: ['ghost@gateway.test'] },
      fixtureMessage('plain.eml', 'g', 'ghost@sender.example'),
      { tls: false },
    );
    expect(result.response).toMatch(/^554 5\.2\.0 /);
  });

  it('store down: 451 4.3.0, and nothing is acknowledged', async () => {
    await lmtp!.close();
    lmtp = undefined;
    const result = await sendWithNodemailer(
      mx.port,
      { from: 'someone@sender.example', to: [frank] },
      fixtureMessage('plain.eml', 'down', 'down@sender.example'),
      { tls: false },
    );
    expect(result.ok).toBe(false);
    expect(result.response).toMatch(/^451 4\.3\.0 /);
    expect(await inbox(frank)).toHaveLength(1);
  });
});
