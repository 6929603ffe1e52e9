/**
 * The world for the list-archive tests: a real key store (SQLite, or Redis
 * whose change notifications travel by pub/sub) with a list
 * owner, two members (alice with two devices, bob), a non-member (carol) and a user whose
 * local part holds `*`; a list joined by the blinded issue; a real mail store — the
 * embedded one or Dovecot from config/dovecot/dovecot.conf — fed over LMTP; and the real
 * proxy in front of it (implicit TLS and STARTTLS listeners, plaintext allowed on
 * loopback); and the real list MX (lists-mx.ts) delivering into that store. `storeSession`
 * logs in to the store itself with the master credential, to see what the proxy did (or
 * did not) change there.
 */
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { ensureTlsMaterial } from '../../src/config/tls.js';
import { keyStoreDirectory } from '../../src/imap/adapters/keystore-directory.js';
import { startImapProxy, type ImapProxy } from '../../src/imap/index.js';
import {
  UpstreamConnection,
  type MasterCredential,
  type UpstreamOptions,
} from '../../src/imap/upstream.js';
import {
  GatewayKey,
  openKeyStore,
  type KeyStore,
  type MailingList,
} from '../../src/keystore/index.js';
import { startLmtpServer } from '../../src/store/lmtp/index.js';
import { startDovecot } from './dovecot.js';
import { startListMx, type ListMx } from './lists-mx.js';
import { startRedis, type RedisServer } from './redis.js';
import {
  addMember,
  blindedJoin,
  type ListGroupKey,
  type ListMemberUser,
  newListGroup,
  rotationDelta,
} from './lists-world.js';
import { encryptToGroup } from './proxy-pki.js';
import { MASTER, startStoreServer } from './store-imap.js';
import { tempDir } from './tmp.js';

export type ArchiveStoreKind = 'embedded' | 'dovecot';
export type ArchiveKeyStoreKind = 'sqlite' | 'redis';

export const DOMAIN = 'lists.test';
export const LIST = `team@${DOMAIN}`;

export interface ArchiveWorld {
  dir: string;
  keyStore: KeyStore;
  owner: ListMemberUser;
  alice: ListMemberUser;
  bob: ListMemberUser;
  carol: ListMemberUser;
  /** A user whose address holds the archive separator: `a*b@lists.test`. */
  starred: ListMemberUser;
  list: MailingList;
  group: ListGroupKey;
  proxy: ImapProxy;
  /** The MX with the list services, delivering into the store over LMTP. */
  mx: ListMx;
  /** The proxy's STARTTLS (plaintext on loopback) and implicit-TLS ports. */
  plainPort: number;
  tlsPort: number;
  /** Delivers `raw` to each store user over LMTP, as the MX does. */
  deliver(raw: Buffer, to: string[]): Promise<void>;
  /** A master login to the store as `user`, bypassing the proxy. */
  storeSession(user: string): Promise<UpstreamConnection>;
  stop(): Promise<void>;
}

interface MailStoreUnderTest {
  imap: UpstreamOptions;
  lmtpPort: number;
  master: MasterCredential;
  stop(): Promise<void>;
}

async function startMailStore(
  kind: ArchiveStoreKind,
  users: string[],
): Promise<MailStoreUnderTest> {
  if (kind === 'dovecot') {
    const dovecot = await startDovecot();
    return {
      imap: { host: '127.0.0.1', port: dovecot.imapPort, tls: false },
      lmtpPort: dovecot.lmtpPort,
      master: { user: dovecot.masterUser, password: dovecot.masterPassword },
      stop: () => dovecot.remove(),
    };
  }
  const store = await startStoreServer(users);
  const lmtp = await startLmtpServer({ store: store.store, host: '127.0.0.1', port: 0 }).catch(
    async (error: unknown) => {
      await store.stop();
      throw error;
    },
  );
  return {
    imap: { host: '127.0.0.1', port: store.server.port, tls: false },
    lmtpPort: lmtp.port,
    master: MASTER,
    stop: async () => {
      await lmtp.close();
      await store.stop();
    },
  };
}

export async function startArchiveWorld(
  kind: ArchiveStoreKind,
  keyStoreKind: ArchiveKeyStoreKind,
): Promise<ArchiveWorld> {
  const dir = tempDir(`lists-archive-${kind}-`);
  const redis: RedisServer | undefined = keyStoreKind === 'redis' ? await startRedis() : undefined;
  const keyStore = await openKeyStore(
    redis === undefined
      ? { kind: 'sqlite', path: join(dir.path, 'keys.sqlite') }
      : { kind: 'redis', url: redis.url },
    { gatewayKey: GatewayKey.generate() },
  );
  // Independent users (certificates, password hashes, key-store rows): made at once.
  const [owner, alice, bob, carol, starred] = await Promise.all([
    addMember(keyStore, dir.path, `owner@${DOMAIN}`, 1),
    addMember(keyStore, dir.path, `alice@${DOMAIN}`, 2),
    addMember(keyStore, dir.path, `bob@${DOMAIN}`, 1),
    addMember(keyStore, dir.path, `carol@${DOMAIN}`, 1),
    addMember(keyStore, dir.path, `a*b@${DOMAIN}`, 1),
  ]);
  const group = await newListGroup(dir.path, owner, LIST, 'g1');
  const list = await keyStore.createList({
    address: LIST,
    owner: owner.address,
    group: { groupId: group.groupId, certificate: group.certDer },
  });
  await blindedJoin(keyStore, list, group, alice);
  await blindedJoin(keyStore, list, group, bob);
  const users = [LIST, owner, alice, bob, carol, starred].map((u) =>
    typeof u === 'string' ? u : u.address,
  );
  const store = await startMailStore(kind, users);
  let proxy: ImapProxy | undefined;
  let mx: ListMx;
  try {
    const tls = await ensureTlsMaterial(dir.path);
    proxy = await startImapProxy({
      host: '127.0.0.1',
      port: 0,
      starttlsPort: 0,
      tls: { key: tls.key, cert: tls.cert },
      upstream: store.imap,
      master: store.master,
      directory: keyStoreDirectory(keyStore),
      allowPlaintextOnLoopback: true,
      // The tests fail logins on purpose, many from one IP: no backoff between them.
      throttle: { freeFailures: 1_000 },
    });
    mx = await startListMx(keyStore, store.lmtpPort, DOMAIN, { dir: dir.path });
  } catch (error) {
    await proxy?.close();
    await store.stop();
    await keyStore.close();
    await redis?.dispose();
    dir.remove();
    throw error;
  }
  return {
    dir: dir.path,
    keyStore,
    owner,
    alice,
    bob,
    carol,
    starred,
    list,
    group,
    proxy,
    mx,
    plainPort: proxy.ports.starttls!,
    tlsPort: proxy.ports.tls!,
    async deliver(raw, to) {
      const transport = nodemailer.createTransport({
        host: '127.0.0.1',
        port: store.lmtpPort,
        lmtp: true,
        secure: false,
        ignoreTLS: true,
      });
      try {
        await transport.sendMail({ envelope: { from: `owner@${DOMAIN}`, to }, raw });
      } finally {
        transport.close();
      }
    },
    storeSession: (user) => UpstreamConnection.open(store.imap, store.master, user),
    async stop() {
      await mx.close();
      await proxy.close();
      await store.stop();
      await keyStore.close();
      await redis?.dispose();
      dir.remove();
    },
  };
}

/** Every message of the store user's INBOX as the store keeps it: UID, flags and bytes. */
export async function storedMessages(
  world: ArchiveWorld,
  user: string,
): Promise<{ uid: number; flags: string; body: Buffer }[]> {
  const session = await world.storeSession(user);
  try {
    const examine = await session.command('EXAMINE INBOX');
    if (!examine.status.startsWith('OK')) throw new Error(`EXAMINE: ${examine.status}`);
    const { untagged } = await session.command('UID FETCH 1:* (UID FLAGS BODY.PEEK[])', 1 << 24);
    return untagged
      .filter((r) => / FETCH /i.test(r.text))
      .map((r) => ({
        uid: Number(/UID (\d+)/i.exec(r.text)?.[1]),
        flags: /FLAGS \(([^)]*)\)/i.exec(r.text)?.[1] ?? '',
        body: r.literals[0]!,
      }));
  } finally {
    session.close();
  }
}

/** The store user's mailbox names (LIST "" "*"), sorted. */
export async function storedMailboxes(world: ArchiveWorld, user: string): Promise<string[]> {
  const session = await world.storeSession(user);
  try {
    const { untagged } = await session.command('LIST "" "*"');
    return untagged
      .map((r) => /^\* LIST \([^)]*\) (?:"[^"]*"|NIL) (.+)$/i.exec(r.text)?.[1] ?? '')
      .filter((name) => name !== '')
      .sort();
  } finally {
    session.close();
  }
}

/**
 * Rotates the list to a new group named `groupName` in the key store (its notification goes
 * to the directory as for any change), then delivers `post` with "second" in its Subject,
 * encrypted to the new group; returns those bytes.
 */
export async function rotateListAndPost(
  world: ArchiveWorld,
  groupName: string,
  post: Buffer,
): Promise<Buffer> {
  const next = await newListGroup(world.dir, world.owner, LIST, groupName);
  await world.keyStore.rotateList(
    LIST,
    world.group.groupId,
    { groupId: next.groupId, certificate: next.certDer },
    rotationDelta(next, world.group),
  );
  const second = Buffer.from(
    post.toString('latin1').replace('Subject:', 'Subject: second'),
    'latin1',
  );
  await world.deliver(await encryptToGroup(second, next, 'after rotation'), [LIST]);
  return second;
}
