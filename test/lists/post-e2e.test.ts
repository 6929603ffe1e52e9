/**
 * End to end: a list with 50 local members (every fifth with two devices) and 3
 * remote members (openssl-made certificates on another server), joined by the blinded
 * issue. One post through the real MX is encrypted once to the list group (list headers
 * and subject tag inside), delivered to every member's mailbox and the archive in the
 * embedded store, and fetched through the real proxy: every device decrypts with
 * `openssl cms` and only its own key. The remote members' copies go out through the
 * outbound queue to a real SMTP server standing in for their provider's MX, and each
 * decrypts with that member's own key only. Then removal + rotation and
 * the attacker who holds the pre-removal gateway data and the removed member's secrets;
 * then the posting policies with their SMTP replies.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GatewayKey,
  openKeyStore,
  type KeyStore,
  type MailingList,
} from '../../src/keystore/index.js';
import {
  composeKeys,
  invertScalar,
  multiplyScalars,
  recipientIdOf,
  recryptMessage,
  type Scalar,
} from '../../src/recrypt/index.js';
import {
  addMember,
  blindedJoin,
  newListGroup,
  rotationDelta,
  writeIdentity,
  type ListGroupKey,
  type ListMemberUser,
} from '../helpers/lists-world.js';
import { post, startListMx, type ListMx } from '../helpers/lists-mx.js';
import { makeRemoteMember, remoteBlindedJoin, type RemoteMember } from '../helpers/lists-remote.js';
import { RemoteMx } from '../helpers/outbound-remote.js';
import { LONG_DN } from '../helpers/recrypt-remote-pki.js';
import {
  fetchBody,
  startListReadPath,
  storedInbox,
  type ListReadPath,
} from '../helpers/lists-proxy.js';
import { decryptWith, encryptToGroup, type PemIdentity } from '../helpers/proxy-pki.js';
import { tempDir } from '../helpers/tmp.js';

const DOMAIN = 'lists.test';
const LIST = `dev@${DOMAIN}`;
const TEMPLATE = readFileSync(
  fileURLToPath(new URL('../fixtures/lists/post-untagged.eml', import.meta.url)),
  'latin1',
);
const postText = (id: string, marker: string) =>
  Buffer.from(TEMPLATE.replace('%ID%', id).replace('%MARKER%', marker), 'latin1');

async function fails(message: Buffer, who: PemIdentity): Promise<boolean> {
  return decryptWith(message, who).then(
    () => false,
    () => true,
  );
}

/** Every scalar the gateway stores: device keys and list keys, of every user. */
async function storedScalars(
  keyStore: KeyStore,
  users: ListMemberUser[],
  remotes: RemoteMember[],
): Promise<Scalar[]> {
  const out: Scalar[] = [];
  for (const remote of remotes)
    out.push(...(await keyStore.listKeysForMember(remote.address)).map((k) => k.rk));
  for (const user of users) {
    for (const device of user.devices)
      out.push(...(await keyStore.keysForDevice(user.address, device.id)).values());
    out.push(...(await keyStore.listKeysForMember(user.address)).map((k) => k.rk));
  }
  return out;
}

/**
 * `check` for every item, at most `width` at a time: each waits on the proxy and on
 * openssl processes, so a few side by side keep the machine busy instead of waiting.
 */
async function eachSideBySide<T>(
  items: T[],
  width: number,
  check: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const index = next++;
        await check(items[index]!, index);
      }
    }),
  );
}

/** Every product of one or two factors from the set and its inverses. */
function reachable(scalars: Scalar[]): Set<Scalar> {
  const base = [...new Set(scalars)].flatMap((s) => [s, invertScalar(s)]);
  const out = new Set<Scalar>(base);
  for (let i = 0; i < base.length; i++)
    for (let j = i; j < base.length; j++) out.add(multiplyScalars(base[i]!, base[j]!));
  return out;
}

describe('a list of 50 local members, end to end', () => {
  const dir = tempDir('lists-e2e-');
  let keyStore: KeyStore;
  let path: ListReadPath;
  let mx: ListMx;
  let remoteMx: RemoteMx;
  const remotes: RemoteMember[] = [];
  let owner: ListMemberUser;
  let stranger: ListMemberUser;
  let members: ListMemberUser[] = [];
  let list: MailingList;
  let g1: ListGroupKey;
  const marker1 = `LISTMARK${Date.now().toString(36)}A`;

  beforeAll(async () => {
    keyStore = await openKeyStore(
      { kind: 'sqlite', path: join(dir.path, 'keys.sqlite') },
      { gatewayKey: GatewayKey.generate() },
    );
    // Independent users (certificates, password hashes, key-store rows): made at once.
    [owner, stranger, ...members] = await Promise.all([
      addMember(keyStore, dir.path, `owner@${DOMAIN}`, 1),
      addMember(keyStore, dir.path, `stranger@${DOMAIN}`, 1),
      ...Array.from({ length: 50 }, (_, i) =>
        addMember(keyStore, dir.path, `m${i}@${DOMAIN}`, i % 5 === 0 ? 2 : 1),
      ),
    ]);
    g1 = await newListGroup(dir.path, owner, LIST, 'g1');
    list = await keyStore.createList({
      address: LIST,
      owner: owner.address,
      displayName: 'Developers',
      subjectTag: '[dev]',
      group: { groupId: g1.groupId, certificate: g1.certDer },
    });
    for (const member of members) await blindedJoin(keyStore, list, g1, member);
    // Three people elsewhere, with certificates unlike ours (DN and serial lengths).
    remotes.push(
      makeRemoteMember(dir.path, 'ann@remote.test', '/CN=Ann', '0x01'),
      makeRemoteMember(dir.path, 'bo@remote.test', LONG_DN, '0x7fee0123456789abcdef0123'),
      makeRemoteMember(dir.path, 'cy@remote.test', '/O=Elsewhere/CN=Cy Remote', '0x4000'),
    );
    for (const remote of remotes) await remoteBlindedJoin(keyStore, list, g1, remote);
    remoteMx = await RemoteMx.start();
    // 53 mailboxes, each post stored in 51: Maildir files in RAM, not waiting on a disk
    // other tests keep busy (this test is not about durability).
    path = await startListReadPath(
      keyStore,
      [LIST, owner.address, stranger.address, ...members.map((m) => m.address)],
      dir.path,
      { inMemory: true },
    );
    mx = await startListMx(keyStore, path.lmtpPort, DOMAIN, {
      dir: dir.path,
      routes: { 'remote.test': `127.0.0.1:${remoteMx.port}` },
    });
  }, 240_000);

  afterAll(async () => {
    await mx?.close();
    await remoteMx?.close();
    await path?.stop();
    await keyStore?.close();
    dir.remove();
  });

  it('one post: one ciphertext in every mailbox, every device reads it with its own key only', async () => {
    const sent = await post(mx.port, members[1]!.address, LIST, postText('1', marker1));
    expect(sent.rcpt).toMatch(/^250/);
    expect(sent.data).toMatch(/^250 .*stored for 51 mailboxes, queued for 3 remote members/);
    const copies = await Promise.all(
      [LIST, ...members.map((m) => m.address)].map(
        async (m) => (await storedInbox(path.store, m))[0]!,
      ),
    );
    // Encrypted once: the same bytes in all 51 mailboxes (50 members and the archive).
    for (const copy of copies) expect(copy.equals(copies[0]!)).toBe(true);
    const plain = await decryptWith(copies[0]!, g1);
    const text = plain.toString('latin1');
    expect(text).toContain('List-Id: "Developers" <dev.lists.test>');
    expect(text).toContain(`List-Post: <mailto:${LIST}>`);
    expect(text).toContain(
      'List-Unsubscribe: <mailto:dev-unsubscribe@lists.test?subject=unsubscribe>',
    );
    expect(text).toContain('List-Archive: <imap://dev%40lists.test@imap.lists.test/INBOX>');
    expect(text).toContain('Subject: [dev] release plan');
    expect(text).not.toContain('evil.example');
    expect(text).toContain(marker1);

    const devices = members.flatMap((m) => m.devices.map((d) => ({ m, d })));
    expect(devices).toHaveLength(60);
    await eachSideBySide(devices, 4, async ({ m, d }, i) => {
      const body = await path.fetch(m.address, d.password, 1);
      const [opened, byOther, byGroup] = await Promise.all([
        decryptWith(body, d),
        // Another member's device, and this member's own group key, do not read this copy.
        fails(body, devices[(i + 1) % devices.length]!.d),
        fails(body, m.group),
      ]);
      expect(opened.equals(plain)).toBe(true);
      expect(byOther).toBe(true);
      expect(byGroup).toBe(true);
    });

    // The remote members' copies arrive at their MX, one each, from the list's bounce address.
    const arrived = await remoteMx.waitFor(3);
    expect(arrived.map((r) => r.to).sort()).toEqual(remotes.map((r) => [r.address]).sort());
    for (const copy of arrived) {
      expect(copy.mailFrom).toBe(`dev-bounces@${DOMAIN}`);
      const remote = remotes.find((r) => r.address === copy.to[0])!;
      expect((await decryptWith(copy.bytes, remote)).equals(plain)).toBe(true);
      expect(
        await fails(
          copy.bytes,
          remotes.find((r) => r !== remote)!,
        ),
      ).toBe(true);
      expect(await fails(copy.bytes, g1)).toBe(true);
      expect(copy.bytes.includes(Buffer.from(marker1))).toBe(false);
    }
  });

  it("the gateway's stored data cannot decrypt a post", async () => {
    const scalars = await storedScalars(keyStore, [owner, stranger, ...members], remotes);
    expect(scalars.length).toBe(60 + 2 + 50 + 3);
    expect(reachable(scalars).has(g1.secret)).toBe(false);
    // And concretely: a stored list key used as if it were the list key fails in openssl.
    const posing = writeIdentity(dir.path, 'posing', g1.certDer, scalars.at(-1)!);
    const copy = (await storedInbox(path.store, LIST))[0]!;
    expect(await fails(copy, posing)).toBe(true);
    // No plaintext of the post anywhere in the key store or the mail store.
    const files = readdirSync(dir.path, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name));
    const storeFiles = readdirSync(path.store.root, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name));
    expect(storeFiles.length).toBeGreaterThan(51);
    for (const file of [...files, ...storeFiles])
      expect(readFileSync(file).includes(Buffer.from(marker1))).toBe(false);
  });

  it('after removal and rotation the removed member plus old gateway data read no later post', async () => {
    const removed = members[0]!;
    // The attacker's copy of the gateway's data from before the removal: every scalar
    // the key store held (unwrapped, as if the gateway key had been taken too).
    const before = await storedScalars(keyStore, [owner, stranger, ...members], remotes);
    const oldListKey = (await keyStore.listKeysForMember(removed.address))[0]!.rk;
    const otherOldKey = (await keyStore.listKeysForMember(members[1]!.address))[0]!.rk;

    await keyStore.removeListMember(LIST, removed.address);
    const g2 = await newListGroup(dir.path, owner, LIST, 'g2');
    await keyStore.rotateList(
      LIST,
      g1.groupId,
      { groupId: g2.groupId, certificate: g2.certDer },
      rotationDelta(g2, g1),
    );

    const marker2 = `LISTMARK${Date.now().toString(36)}B`;
    const sent = await post(mx.port, members[2]!.address, LIST, postText('2', marker2));
    expect(sent.data).toMatch(/^250 .*stored for 50 mailboxes, queued for 3 remote members/);
    const copy2 = (await storedInbox(path.store, LIST))[1]!;
    expect((await decryptWith(copy2, g2)).toString('latin1')).toContain(marker2);

    // Every product of one or two of the attacker's scalars (stored ones, the removed
    // member's group and device secrets, and their inverses) misses g_new.
    const secrets = [removed.groupSecret, ...removed.devices.map((d) => d.secret)];
    expect(reachable([...before, ...secrets]).has(g2.secret)).toBe(false);
    // Concretely: recrypting the new post with the old list key composed with a device
    // key, under the new group's id, gives a copy the removed device still cannot read.
    const device = removed.devices[0]!;
    const own = (await keyStore.keysForDevice(removed.address, device.id)).get(removed.groupId)!;
    const forced = recryptMessage(copy2, {
      deviceId: recipientIdOf(device.certDer),
      wrapEncoding: 'absent',
      keys: new Map([[g2.groupId, composeKeys(oldListKey, own)]]),
    });
    expect(await fails(Buffer.from(forced), device)).toBe(true);
    // What the same attacker CAN compute (docs/lists.md, "What rotation protects"): the
    // old list key (posts before the rotation, which the member could read anyway) and,
    // by collusion, each member's group secret as of the copy: g_m = g_old·rk_old⁻¹.
    const gOld = multiplyScalars(oldListKey, removed.groupSecret);
    expect(gOld).toBe(g1.secret);
    expect(multiplyScalars(gOld, invertScalar(otherOldKey))).toBe(members[1]!.groupSecret);
    // The removed member no longer receives posts at all.
    expect(await storedInbox(path.store, removed.address)).toHaveLength(1);

    // The remote members' copies of the new post, recrypted with their re-keyed keys.
    const arrived = (await remoteMx.waitFor(6)).slice(3);
    for (const copy of arrived) {
      const remote = remotes.find((r) => r.address === copy.to[0])!;
      expect((await decryptWith(copy.bytes, remote)).toString('latin1')).toContain(marker2);
    }

    // The remaining members read old and new posts alike.
    await eachSideBySide(members.slice(1), 4, async (m) => {
      const d = m.devices.at(-1)!;
      const w = await path.session(m.address, d.password);
      const [first, second] = [await fetchBody(w, 1), await fetchBody(w, 2)];
      w.close();
      const [old, later] = await Promise.all([decryptWith(first, d), decryptWith(second, d)]);
      expect(old.toString('latin1')).toContain(marker1);
      expect(later.toString('latin1')).toContain(marker2);
    });
  });

  it('enforces the posting policy with 550 5.7.1 and accepts what it allows', async () => {
    const p = (from: string) => post(mx.port, from, LIST, postText('p', 'policy'));
    expect((await p(stranger.address)).rcpt).toMatch(
      /^550 5\.7\.1 Only members may post to dev@lists\.test/,
    );
    expect((await p('')).rcpt).toMatch(/^550 5\.7\.1 .*null sender/);
    expect((await p(members[0]!.address)).rcpt).toMatch(/^550 5\.7\.1/); // removed above
    await keyStore.updateList(LIST, { policy: 'announce' });
    expect((await p(members[3]!.address)).rcpt).toMatch(/^550 5\.7\.1 .*announce-only/);
    const announced = await p(owner.address);
    expect(announced.data).toMatch(/^250/);
    await keyStore.updateList(LIST, { policy: 'moderated' });
    expect((await p(members[3]!.address)).data).toMatch(/^250 .*held for moderation/);
    expect(await mx.held.list(LIST)).toHaveLength(1);
    await keyStore.updateList(LIST, { policy: 'open' });
    expect((await p(stranger.address)).data).toMatch(/^250/);
    // A sender's own envelope to the current list certificate is stored as it is.
    const current = (await keyStore.getList(LIST))!.group;
    const groupPem = writeIdentity(dir.path, 'current-list', current.certificate, 1n);
    const envelope = await encryptToGroup(postText('e2e', 'end-to-end'), groupPem, 'sealed');
    expect((await post(mx.port, stranger.address, LIST, envelope)).data).toMatch(/^250/);
    expect((await storedInbox(path.store, LIST)).at(-1)!.equals(envelope)).toBe(true);
    // Too large for the MX: refused at DATA, nothing stored.
    const count = (await storedInbox(path.store, LIST)).length;
    const big = Buffer.concat([postText('big', 'big'), Buffer.alloc(1100 * 1024, 'x\r\n')]);
    expect((await post(mx.port, stranger.address, LIST, big)).data).toMatch(/^552 5\.3\.4/);
    expect(await storedInbox(path.store, LIST)).toHaveLength(count);
    // An unknown address on the list's domain is still 550 5.1.1.
    expect(
      (await post(mx.port, stranger.address, `nolist@${DOMAIN}`, postText('x', 'x'))).rcpt,
    ).toMatch(/^550 5\.1\.1/);
  });
});
