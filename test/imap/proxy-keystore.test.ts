/**
 * The proxy with its real DeviceDirectory adapter over the SQLite key store, in front
 * of Dovecot: device passwords hashed by the key store, keys read from it, and a device
 * revoked in the store losing its open session.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyStoreDirectory } from '../../src/imap/adapters/keystore-directory.js';
import { startImapProxy, type ImapProxy } from '../../src/imap/index.js';
import {
  GatewayKey,
  hashDeviceCredential,
  openKeyStore,
  type KeyStore,
} from '../../src/keystore/index.js';
import { recipientIdOf, spkiOfPoint } from '../../src/recrypt/certificates.js';
import { publicPoint, randomScalar } from '../../src/recrypt/scalar.js';
import { ensureTlsMaterial } from '../../src/config/tls.js';
import { startDovecot, type Dovecot } from '../helpers/dovecot.js';
import { decryptWith, encryptToGroup, makeTestUser, type TestUser } from '../helpers/proxy-pki.js';
import { openWire, type Wire } from '../helpers/proxy-wire.js';
import { tempDir } from '../helpers/tmp.js';
import nodemailer from 'nodemailer';

describe('IMAP proxy with the key-store directory', () => {
  const dir = tempDir('imap-keystore-');
  let dovecot: Dovecot;
  let store: KeyStore;
  let proxy: ImapProxy;
  let user: TestUser;
  const ids: string[] = [];
  const wires: Wire[] = [];
  const plain = Buffer.from('Subject: from the key store\r\n\r\nhello\r\n');

  beforeAll(async () => {
    dovecot = await startDovecot();
    user = await makeTestUser(dir.path, 'dana@example.org', 2);
    store = await openKeyStore(
      { kind: 'sqlite', path: join(dir.path, 'keys.sqlite') },
      { gatewayKey: GatewayKey.generate() },
    );
    await store.addUser({ address: user.address });
    const token = await store.createEnrolmentToken(user.address, 60_000);
    await store.enrol(user.address, token, {
      ownerCaCertificate: user.ownerCa,
      groupCertificate: user.group.certDer,
      groupId: Buffer.from(recipientIdOf(user.group.certDer)).toString('hex'),
      ownerKeySpki: spkiOfPoint(publicPoint(randomScalar())),
    });
    for (const device of user.devices) {
      const added = await store.addDevice({
        ownerAddress: user.address,
        name: device.deviceId,
        certificate: device.certDer,
        deviceId: Buffer.from(device.keys.deviceId).toString('hex'),
        client: 'standard',
        credentialHash: await hashDeviceCredential(device.password),
        keys: device.keys.keys,
      });
      ids.push(added.id);
    }
    const tls = await ensureTlsMaterial(dir.path);
    proxy = await startImapProxy({
      host: '127.0.0.1',
      starttlsPort: 0,
      tls: { key: tls.key, cert: tls.cert },
      upstream: { host: '127.0.0.1', port: dovecot.imapPort, tls: false },
      master: { user: dovecot.masterUser, password: dovecot.masterPassword },
      directory: keyStoreDirectory(store),
      allowPlaintextOnLoopback: true,
    });
    const transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port: dovecot.lmtpPort,
      lmtp: true,
      secure: false,
      ignoreTLS: true,
    });
    await transport.sendMail({
      envelope: { from: 'x@example.org', to: user.address },
      raw: await encryptToGroup(plain, user.group),
    });
    transport.close();
  });
  afterAll(async () => {
    for (const wire of wires) wire.close();
    await proxy?.close();
    await store?.close();
    await dovecot?.remove();
    dir.remove();
  });

  async function login(index: number): Promise<Wire> {
    const w = await openWire(proxy.ports.starttls!);
    wires.push(w);
    await w.waitFor(/^\* OK .*\r\n/);
    w.send(`L LOGIN ${user.address} ${user.devices[index]!.password}\r\n`);
    await w.waitFor(/\nL (OK|NO).*\r\n/);
    return w;
  }

  it('logs a device in with its key-store credential and recrypts for its key-store keys', async () => {
    const w = await login(0);
    expect(w.received()).toMatch(/\nL OK/);
    w.send('S SELECT INBOX\r\nF UID FETCH 1 (BODY.PEEK[])\r\n');
    const text = await w.waitFor(/\nF OK .*\r\n/);
    const match = /\{(\d+)\}\r\n/.exec(text.slice(text.indexOf('* 1 FETCH')))!;
    const start = text.indexOf('* 1 FETCH') + match.index + match[0].length;
    const body = Buffer.from(text.slice(start, start + Number(match[1])), 'latin1');
    expect((await decryptWith(body, user.devices[0]!)).equals(plain)).toBe(true);
  });

  it('a device revoked in the key store loses its open session and cannot log in again', async () => {
    const w = await login(1);
    expect(w.received()).toMatch(/\nL OK/);
    await store.revokeDevice(user.address, ids[1]!);
    await w.waitFor(/\* BYE Device access revoked\r\n/, 2_000);
    await w.closed();
    const again = await login(1);
    expect(again.received()).toMatch(/\nL NO \[AUTHENTICATIONFAILED\]/);
  });
});
