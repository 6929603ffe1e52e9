/**
 * Sending as a list through the real submission listener (docs/sending.md "Sending as a
 * list"): swaks over STARTTLS with a device's credential, against a real SQLite key store
 * with lists made by the blinded join (test/helpers/lists-world.ts), the embedded store
 * behind the real proxy and the list tests' MX services and outbound queue
 * (test/helpers/lists-mx.ts, lists-proxy.ts), and a real SMTP server for remote.test.
 *
 * * the owner sends as the list (any policy), a member as a `members` list: delivered,
 *   the recipient reads it through the proxy with their own device key; the Sent copy is
 *   the sender's, read by their device; the list's group key does not open it (the
 *   list's members are no recipients); the return path stays the user's address;
 * * refused with 550 5.7.1: a member as an `announce` or `moderated` list, a member of
 *   another list, someone on no list, a removed member, the owner of a deleted list,
 *   look-alikes (+tag, Cyrillic і, the Kelvin sign); the upper case of the list address
 *   is the list;
 * * a From field naming a list the user may not use: 550 after DATA, nothing delivered
 *   or queued.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTlsMaterial } from '../../src/config/tls.js';
import { keyStoreDirectory as deviceDirectory } from '../../src/imap/adapters/keystore-directory.js';
import { GatewayKey, openKeyStore, type KeyStore } from '../../src/keystore/index.js';
import type { PostingPolicy } from '../../src/keystore/list-types.js';
import { keyStoreDirectory } from '../../src/smtp/adapters/keystore-directory.js';
import { lmtpDelivery } from '../../src/smtp/lmtp-delivery.js';
import { keySources } from '../../src/submission/key-sources.js';
import { sentCopies } from '../../src/submission/sent-copy.js';
import { startSubmissionServer, type SubmissionServer } from '../../src/submission/server.js';
import { requireBinary } from '../helpers/binaries.js';
import { startListMx, type ListMx } from '../helpers/lists-mx.js';
import {
  fetchBody,
  startListReadPath,
  storedInbox,
  type ListReadPath,
} from '../helpers/lists-proxy.js';
import {
  addMember,
  blindedJoin,
  newListGroup,
  type ListGroupKey,
  type ListMemberUser,
} from '../helpers/lists-world.js';
import { RemoteMx } from '../helpers/outbound-remote.js';
import { decryptWith } from '../helpers/proxy-pki.js';
import { MASTER } from '../helpers/store-imap.js';
import { swaks as submitSwaks } from '../helpers/submission-swaks.js';
import { tempDir } from '../helpers/tmp.js';

const DOMAIN = 'lists.test';
const KIT = `kit@${DOMAIN}`; // members
const NEWS = `news@${DOMAIN}`; // announce
const MOD = `mod@${DOMAIN}`; // moderated
const OLD = `old@${DOMAIN}`; // deleted in the test

const dir = tempDir('submission-list-sender-');
let keyStore: KeyStore;
let path: ListReadPath;
let mx: ListMx;
let remote: RemoteMx;
let submission: SubmissionServer;
let owner: ListMemberUser;
let member: ListMemberUser;
let newsOnly: ListMemberUser;
let stranger: ListMemberUser;
let former: ListMemberUser;
let carol: ListMemberUser;
const groups = new Map<string, ListGroupKey>();

async function makeList(address: string, policy: PostingPolicy, joiners: ListMemberUser[]) {
  const group = await newListGroup(dir.path, owner, address, 'g1');
  groups.set(address, group);
  const list = await keyStore.createList({
    address,
    owner: owner.address,
    policy,
    group: { groupId: group.groupId, certificate: group.certDer },
  });
  for (const joiner of joiners) await blindedJoin(keyStore, list, group, joiner);
}

/** One swaks transaction as `user`; its transcript (also when swaks fails). */
async function swaks(user: ListMemberUser, args: string[]): Promise<string> {
  const device = { address: user.address, password: user.devices[0]!.password };
  const target = { port: submission.port, user: device, timeoutSeconds: 30 };
  return (await submitSwaks(target, args)).stdout;
}

const send = (user: ListMemberUser, from: string, to: string, header = from, marker = 'x') =>
  swaks(user, [
    '--from',
    from,
    '--to',
    to,
    '--header',
    `From: ${header}`,
    '--header',
    `Subject: as ${header}`,
    '--body',
    marker,
  ]);

/** The mailbox's messages through the proxy, as `user`'s first device reads them. */
async function readThroughProxy(user: ListMemberUser, mailbox: string): Promise<Buffer[]> {
  const wire = await path.session(user.address, user.devices[0]!.password);
  try {
    const before = wire.received().length;
    wire.send(`X EXAMINE ${mailbox}\r\n`);
    const text = (await wire.waitFor(/\nX (OK|NO|BAD).*\r\n/)).slice(before);
    const count = Number(/\* (\d+) EXISTS/.exec(text)?.[1] ?? 0);
    const out: Buffer[] = [];
    for (let uid = 1; uid <= count; uid++) out.push(await fetchBody(wire, uid));
    return out;
  } finally {
    wire.send('Z LOGOUT\r\n');
    wire.close();
  }
}

const opens = (message: Buffer, who: { certPath: string; keyPath: string; certDer: Uint8Array }) =>
  decryptWith(message, who).then(
    (plain) => plain.toString('utf8'),
    () => null,
  );

beforeAll(async () => {
  requireBinary('swaks');
  requireBinary('openssl');
  keyStore = await openKeyStore(
    { kind: 'sqlite', path: join(dir.path, 'keys.sqlite') },
    { gatewayKey: GatewayKey.generate() },
  );
  owner = await addMember(keyStore, dir.path, `owner@${DOMAIN}`, 1);
  member = await addMember(keyStore, dir.path, `member@${DOMAIN}`, 1);
  newsOnly = await addMember(keyStore, dir.path, `reader@${DOMAIN}`, 1);
  stranger = await addMember(keyStore, dir.path, `stranger@${DOMAIN}`, 1);
  former = await addMember(keyStore, dir.path, `former@${DOMAIN}`, 1);
  carol = await addMember(keyStore, dir.path, `carol@${DOMAIN}`, 1);
  await makeList(KIT, 'members', [member, former]);
  await makeList(NEWS, 'announce', [member, newsOnly]);
  await makeList(MOD, 'moderated', [member]);
  await makeList(OLD, 'members', []);
  await keyStore.removeListMember(KIT, former.address);
  remote = await RemoteMx.start();
  const users = [owner, member, newsOnly, stranger, former, carol].map((u) => u.address);
  path = await startListReadPath(keyStore, [...users, KIT, NEWS, MOD, OLD], dir.path);
  mx = await startListMx(keyStore, path.lmtpPort, DOMAIN, {
    dir: dir.path,
    routes: { 'remote.test': `127.0.0.1:${remote.port}` },
  });
  const tls = await ensureTlsMaterial(dir.path);
  submission = await startSubmissionServer({
    host: '127.0.0.1',
    port: 0,
    tlsPort: 0,
    tls: { key: tls.key, cert: tls.cert },
    hostname: `mx.${DOMAIN}`,
    maxSize: 1024 * 1024,
    maxRecipients: 10,
    rateLimit: { perMinute: 600, burst: 100 },
    withoutKey: 'send',
    hideSubject: false,
    devices: deviceDirectory(keyStore),
    directory: keyStoreDirectory({ keyStore, localDomains: [DOMAIN], lists: mx.lists }),
    lists: keyStore,
    discovery: keySources([]),
    delivery: lmtpDelivery({ host: '127.0.0.1', port: path.lmtpPort, timeoutMs: 10_000 }),
    queue: mx.queue,
    sentCopies: sentCopies({
      upstream: { host: '127.0.0.1', port: path.store.server.port, tls: false },
      master: MASTER,
    }),
  });
}, 120_000);

afterAll(async () => {
  await submission?.close();
  await mx?.close();
  await path?.stop();
  await remote?.close();
  await keyStore?.close();
  dir.remove();
});

describe('sending as a list through submission', () => {
  it('the owner sends as the list: delivered, read by the recipient and in the owner’s Sent; the list key does not open it', async () => {
    const out = await send(owner, KIT, `${carol.address},bob@remote.test`, KIT, 'OWNER-AS-KIT');
    expect(out).toMatch(/<~ +250 2\.6\.0 OK: sent to 2 recipients; 1 sent without encryption/);
    const [received] = await readThroughProxy(carol, 'INBOX');
    const plain = await opens(received!, carol.devices[0]!);
    expect(plain).toContain('OWNER-AS-KIT');
    expect(plain).toContain(`From: ${KIT}`);
    const [sent] = await readThroughProxy(owner, 'Sent');
    expect(await opens(sent!, owner.devices[0]!)).toContain('OWNER-AS-KIT');
    // Encrypted to the recipients and the sender's own group, not to the list's group.
    const [stored] = await storedInbox(path.store, carol.address);
    expect(await opens(stored!, groups.get(KIT)!)).toBeNull();
    expect(await opens(stored!, carol.group)).toContain('OWNER-AS-KIT');
    expect(await opens(stored!, owner.group)).toContain('OWNER-AS-KIT');
    // Delivery reports go to the person who sent, not to the list.
    const [mail] = await remote.waitFor(1);
    expect(mail!.mailFrom).toBe(owner.address);
    expect(mail!.bytes.toString('utf8')).toContain(`From: ${KIT}`);
  });

  it('the owner may send as an announce and a moderated list; a member as a members list, in any case', async () => {
    for (const list of [NEWS, MOD])
      expect(await send(owner, list, carol.address)).toMatch(/<~ +250 2\.6\.0 OK: sent to 1/);
    expect(await send(member, KIT, carol.address, KIT, 'MEMBER-AS-KIT')).toMatch(
      /<~ +250 2\.6\.0 OK: sent to 1 recipient/,
    );
    expect(await send(member, 'KIT@Lists.Test', carol.address, 'Kit@LISTS.test')).toMatch(
      /<~ +250 2\.6\.0 /,
    );
    const inbox = await readThroughProxy(carol, 'INBOX');
    const last = await Promise.all(inbox.slice(-2).map((m) => opens(m, carol.devices[0]!)));
    expect(last[0]).toContain('MEMBER-AS-KIT');
    // The member's own Sent copy, read by the member's device.
    const sent = await readThroughProxy(member, 'Sent');
    expect(await opens(sent[0]!, member.devices[0]!)).toContain('MEMBER-AS-KIT');
  });

  it('refuses at MAIL FROM whoever may not speak for the list, and look-alikes', async () => {
    const refused = async (user: ListMemberUser, from: string, reply: RegExp) => {
      const out = await send(user, from, carol.address);
      expect(out, `${user.address} as ${from}`).toMatch(reply);
      expect(out).not.toMatch(/<~ +250 2\.6\.0/);
    };
    await refused(member, NEWS, /<~\* +550 5\.7\.1 .*announce-only, only its owner/);
    await refused(member, MOD, /<~\* +550 5\.7\.1 .*moderated, only its owner/);
    await refused(
      newsOnly,
      KIT,
      /<~\* +550 5\.7\.1 You may not send as kit@lists\.test: you are not/,
    );
    await refused(
      stranger,
      KIT,
      /<~\* +550 5\.7\.1 You may not send as kit@lists\.test: you are not/,
    );
    await refused(
      former,
      KIT,
      /<~\* +550 5\.7\.1 You may not send as kit@lists\.test: you are not/,
    );
    await refused(member, `kit+x@${DOMAIN}`, /<~\* +550 5\.7\.1 You may only send as your own/);
    await keyStore.removeList(OLD);
    await refused(owner, OLD, /<~\* +550 5\.7\.1 You may only send as your own address/);
  });

  it('a From field naming a list the user may not use (or a look-alike of one): 550 after DATA, nothing sent', async () => {
    const inboxBefore = (await storedInbox(path.store, carol.address)).length;
    const queuedBefore = remote.received.length;
    for (const from of [NEWS, `\u212Ait@${DOMAIN}`, `k\u0456t@${DOMAIN}`]) {
      const out = await send(member, member.address, `${carol.address},bob@remote.test`, from);
      expect(out, from).toMatch(/<~ +354 /);
      expect(out, from).toMatch(/<~\* +550 5\.7\.1 /);
    }
    expect(await mx.queue.size()).toBe(0);
    // A message sent afterwards is the only one that arrives.
    const out = await send(member, member.address, 'bob@remote.test', member.address, 'AFTER');
    expect(out).toMatch(/<~ +250 2\.6\.0 /);
    const received = await remote.waitFor(queuedBefore + 1);
    expect(received.slice(queuedBefore).map((m) => m.bytes.toString('utf8'))).toEqual([
      expect.stringContaining('AFTER'),
    ]);
    expect((await storedInbox(path.store, carol.address)).length).toBe(inboxBefore);
  });
});
