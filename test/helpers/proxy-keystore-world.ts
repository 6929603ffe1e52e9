/**
 * The proxy with its real key-store directory (SQLite file or a throwaway redis-server)
 * in front of the embedded store: a user enrolled in the key store with devices whose
 * passwords are hashed as the owner's CLI does (the account's salt). For tests of the
 * login path: revocation, throttling, limits. `stop()` ends all.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ensureTlsMaterial } from '../../src/config/tls.js';
import { keyStoreDirectory } from '../../src/imap/adapters/keystore-directory.js';
import { startImapProxy, type ImapProxy, type ImapProxyOptions } from '../../src/imap/index.js';
import {
  GatewayKey,
  hashDeviceCredential,
  openKeyStore,
  type KeyStore,
} from '../../src/keystore/index.js';
import { recipientIdOf, spkiOfPoint } from '../../src/recrypt/certificates.js';
import { publicPoint, randomScalar } from '../../src/recrypt/scalar.js';
import { startImapServer } from '../../src/store/imap/index.js';
import { createMaildirStore } from '../../src/store/maildir/index.js';
import type { MailStore } from '../../src/store/backend.js';
import { makeTestUser, type TestUser } from './proxy-pki.js';
import { startRedis, type RedisServer } from './redis.js';
import { tempDir } from './tmp.js';

export type KeyStoreKind = 'sqlite' | 'redis';

export interface KeyStoreWorld {
  store: KeyStore;
  proxy: ImapProxy;
  user: TestUser;
  /** Key-store record ids of the user's devices, in the order of `user.devices`. */
  ids: string[];
  /** The embedded store's IMAP port and master credential (to start another proxy). */
  upstream: { port: number; master: { user: string; password: string } };
  /** Delivers a message into the user's INBOX (what the store's LMTP listener does). */
  deliver(message: Uint8Array): Promise<void>;
  /** The embedded mail store (to put its LMTP listener in front). */
  mail: MailStore;
  /** Adds `user.devices[index]` to the key store (those past `registered` start absent). */
  register(index: number): Promise<string>;
  stop(): Promise<void>;
}

export async function startKeyStoreWorld(
  kind: KeyStoreKind,
  extra: Partial<ImapProxyOptions> = {},
  deviceCount = 1,
  registered = deviceCount,
): Promise<KeyStoreWorld> {
  const dir = tempDir('imap-ks-world-');
  const stops: Array<() => Promise<void>> = [async () => dir.remove()];
  const stop = async (): Promise<void> => {
    for (const step of stops.splice(0).reverse()) await step().catch(() => undefined);
  };
  try {
    const user = await makeTestUser(dir.path, 'erin@example.org', deviceCount);
    const mail = await createMaildirStore({ root: join(dir.path, 'mail') });
    stops.push(() => mail.close());
    await mail.createUser(user.address);
    const master = { user: 'gateway', password: randomBytes(18).toString('base64url') };
    const imap = await startImapServer({ store: mail, master });
    stops.push(() => imap.close());
    let redis: RedisServer | undefined;
    if (kind === 'redis') {
      redis = await startRedis();
      stops.push(() => redis!.dispose());
    }
    const store = await openKeyStore(
      redis === undefined
        ? { kind: 'sqlite', path: join(dir.path, 'keys.sqlite') }
        : { kind: 'redis', url: redis.url },
      { gatewayKey: GatewayKey.generate() },
    );
    stops.push(() => store.close());
    await store.addUser({ address: user.address });
    const token = await store.createEnrolmentToken(user.address, 60_000);
    await store.enrol(user.address, token, {
      ownerCaCertificate: user.ownerCa,
      groupCertificate: user.group.certDer,
      groupId: Buffer.from(recipientIdOf(user.group.certDer)).toString('hex'),
      ownerKeySpki: spkiOfPoint(publicPoint(randomScalar())),
    });
    const ids: string[] = [];
    const register = async (index: number): Promise<string> => {
      const device = user.devices[index]!;
      const added = await store.addDevice({
        ownerAddress: user.address,
        name: device.deviceId,
        certificate: device.certDer,
        deviceId: Buffer.from(device.keys.deviceId).toString('hex'),
        client: 'standard',
        credentialHash: await hashDeviceCredential(device.password, user.address),
        keys: device.keys.keys,
      });
      ids[index] = added.id;
      return added.id;
    };
    for (let index = 0; index < registered; index++) await register(index);
    const tls = await ensureTlsMaterial(dir.path);
    const proxy = await startImapProxy({
      host: '127.0.0.1',
      port: 0,
      starttlsPort: 0,
      tls: { key: tls.key, cert: tls.cert },
      upstream: { host: '127.0.0.1', port: imap.port, tls: false },
      master,
      directory: keyStoreDirectory(store),
      allowPlaintextOnLoopback: true,
      ...extra,
    });
    stops.push(() => proxy.close());
    return {
      store,
      proxy,
      user,
      ids,
      upstream: { port: imap.port, master },
      deliver: async (message) => {
        await mail.deliver(user.address, message);
      },
      mail,
      register,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
