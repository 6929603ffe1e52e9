/**
 * A list's mail interface, end to end through the real MX, the outbound queue, a real
 * remote MX (smtp-server) and the embedded store: mail to team-owner@ reaches the owner
 * encrypted to the owner's group; leaving by List-Unsubscribe takes a confirmation from
 * the member's own mailbox; a remote member's copy that the remote MX refuses comes back
 * as a delivery report to team-bounces@, which the owner reads; a moderated list holds
 * posts and tells the owner. Every reply is the protocol's and nothing is lost.
 */
import { join } from 'node:path';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GatewayKey,
  openKeyStore,
  type KeyStore,
  type MailingList,
  type PostingPolicy,
} from '../../src/keystore/index.js';
import {
  addMember,
  blindedJoin,
  newListGroup,
  type ListGroupKey,
  type ListMemberUser,
} from '../helpers/lists-world.js';
import { post, startListMx, type ListMx } from '../helpers/lists-mx.js';
import { startListReadPath, storedInbox, type ListReadPath } from '../helpers/lists-proxy.js';
import { makeRemoteMember, remoteBlindedJoin, type RemoteMember } from '../helpers/lists-remote.js';
import { RemoteMx, type RcptAnswer, type ReceivedMail } from '../helpers/outbound-remote.js';
import { decryptWith, type PemIdentity } from '../helpers/proxy-pki.js';
import { SmtpWire } from '../helpers/smtp-wire.js';
import { tempDir } from '../helpers/tmp.js';

const DOMAIN = 'lists.test';
const REMOTE_DOMAIN = 'remote.test';
const LIST = `team@${DOMAIN}`;

const mail = (from: string, to: string, subject: string, body: string): Buffer =>
  Buffer.from(
    `From: <${from}>\r\nTo: <${to}>\r\nSubject: ${subject}\r\nMessage-ID: <${Math.random()
      .toString(36)
      .slice(2)}@test>\r\nDate: Sun, 29 Nov 2026 10:00:00 +0000\r\n\r\n${body}\r\n`,
    'latin1',
  );

async function fails(message: Buffer, who: PemIdentity): Promise<boolean> {
  return decryptWith(message, who).then(
    () => false,
    () => true,
  );
}

/** A notice as its reader sees it: decrypted, and the text part decoded. */
async function noticeText(message: Buffer, who: PemIdentity): Promise<string> {
  return (await simpleParser(await decryptWith(message, who))).text ?? '';
}

async function waitForInbox(
  path: ListReadPath,
  mailbox: string,
  count: number,
  timeoutMs = 60_000,
): Promise<Buffer[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const inbox = await storedInbox(path.store, mailbox);
    if (inbox.length >= count) return inbox;
    if (Date.now() > deadline) throw new Error(`${mailbox}: ${inbox.length} of ${count} messages`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** An embedded store behind the proxy, an owner, a stranger and `count` members of LIST. */
async function listWorld(dir: string, count: number, policy: PostingPolicy = 'members') {
  const keyStore = await openKeyStore(
    { kind: 'sqlite', path: join(dir, 'keys.sqlite') },
    { gatewayKey: GatewayKey.generate() },
  );
  const owner = await addMember(keyStore, dir, `owner@${DOMAIN}`, 1);
  const stranger = await addMember(keyStore, dir, `stranger@${DOMAIN}`, 1);
  const members: ListMemberUser[] = [];
  for (let i = 0; i < count; i++)
    members.push(await addMember(keyStore, dir, `m${i}@${DOMAIN}`, 1));
  const group = await newListGroup(dir, owner, LIST, 'g1');
  const list = await keyStore.createList({
    address: LIST,
    owner: owner.address,
    displayName: 'Team',
    policy,
    group: { groupId: group.groupId, certificate: group.certDer },
  });
  for (const member of members) await blindedJoin(keyStore, list, group, member);
  const path = await startListReadPath(
    keyStore,
    [LIST, owner.address, stranger.address, ...members.map((m) => m.address)],
    dir,
  );
  return { keyStore, owner, stranger, members, group, list, path };
}

describe('a list’s control addresses, bounces and moderation', () => {
  const dir = tempDir('lists-control-');
  let keyStore: KeyStore;
  let path: ListReadPath;
  let remoteMx: RemoteMx;
  let remoteRefusal: RcptAnswer;
  let listMx: ListMx;
  let owner: ListMemberUser;
  let stranger: ListMemberUser;
  const members: ListMemberUser[] = [];
  let remote: RemoteMember;
  let list: MailingList;
  let group: ListGroupKey;

  beforeAll(async () => {
    const world = await listWorld(dir.path, 3);
    ({ keyStore, owner, stranger, group, list, path } = world);
    members.push(...world.members);
    remote = makeRemoteMember(dir.path, `carol@${REMOTE_DOMAIN}`, '/CN=Carol Remote', '0x4242');
    await remoteBlindedJoin(keyStore, list, group, remote);
    remoteMx = await RemoteMx.start({ onRcpt: () => remoteRefusal });
    listMx = await startListMx(keyStore, path.lmtpPort, DOMAIN, {
      dir: dir.path,
      routes: { [REMOTE_DOMAIN]: `127.0.0.1:${remoteMx.port}` },
    });
  }, 120_000);

  afterAll(async () => {
    await listMx?.close();
    await remoteMx?.close();
    await path?.stop();
    await keyStore?.close();
    dir.remove();
  });

  it('team-owner@ reaches the list owner, encrypted to the owner’s group', async () => {
    const sent = await post(
      listMx.port,
      stranger.address,
      `team-owner@${DOMAIN}`,
      mail(stranger.address, `team-owner@${DOMAIN}`, 'a question', 'OWNERMARK'),
    );
    expect(sent.data).toMatch(/^250 /);
    const inbox = await storedInbox(path.store, owner.address);
    expect((await decryptWith(inbox.at(-1)!, owner.group)).toString('latin1')).toContain(
      'OWNERMARK',
    );
  });

  it('a refused remote copy comes back to team-bounces@ as a report the owner reads', async () => {
    remoteRefusal = [550, '5.1.1 carol has left the building'];
    const before = (await storedInbox(path.store, owner.address)).length;
    const sent = await post(
      listMx.port,
      members[0]!.address,
      LIST,
      mail(members[0]!.address, LIST, 'hello', 'POSTMARK1'),
    );
    expect(sent.data).toMatch(/^250 .*queued for 1 remote member/);
    const inbox = await waitForInbox(path, owner.address, before + 1);
    const report = await simpleParser(await decryptWith(inbox.at(-1)!, owner.group));
    const text = `${report.text ?? ''}${report.attachments.map((a) => a.content.toString('latin1')).join('')}`;
    expect(text).toContain(remote.address);
    expect(text).toMatch(/5\.1\.1/);
    expect(text).not.toContain('POSTMARK1');
    remoteRefusal = undefined;
  });

  it('leaving by List-Unsubscribe needs the confirmation from the member’s mailbox', async () => {
    const leaver = members[1]!;
    const unsubscribe = `team-unsubscribe@${DOMAIN}`;
    // A stranger gets the same answer as a member, and nothing is sent to anyone.
    const strangerBefore = (await storedInbox(path.store, stranger.address)).length;
    const fromStranger = await post(
      listMx.port,
      stranger.address,
      unsubscribe,
      mail(stranger.address, unsubscribe, 'unsubscribe', ''),
    );
    expect(fromStranger.data).toMatch(/^250 .*confirmation request is on its way/);
    expect(await storedInbox(path.store, stranger.address)).toHaveLength(strangerBefore);
    // Null sender: refused at RCPT.
    expect(
      (await post(listMx.port, '', unsubscribe, mail('x@y', unsubscribe, 'x', ''))).rcpt,
    ).toMatch(/^550 5\.7\.1/);

    const before = (await storedInbox(path.store, leaver.address)).length;
    const asked = await post(
      listMx.port,
      leaver.address,
      unsubscribe,
      mail(leaver.address, unsubscribe, 'unsubscribe', ''),
    );
    expect(asked.data).toMatch(/^250 .*confirmation request is on its way/);
    const inbox = await storedInbox(path.store, leaver.address);
    expect(inbox).toHaveLength(before + 1);
    const request = await simpleParser(await decryptWith(inbox.at(-1)!, leaver.group));
    const confirm = request.replyTo?.value[0]?.address ?? '';
    expect(confirm).toMatch(/^team-confirm\+[0-9a-z]+@lists\.test$/);
    expect(request.headers.get('auto-submitted')).toBe('auto-generated');
    expect((await keyStore.listMembers(LIST)).map((m) => m.address)).toContain(leaver.address);

    // Someone else replying with that address, or an altered token: 550 at RCPT.
    expect(
      (
        await post(
          listMx.port,
          members[2]!.address,
          confirm,
          mail(members[2]!.address, confirm, 'Re', ''),
        )
      ).rcpt,
    ).toMatch(/^550 5\.7\.1 .*not valid/);
    const altered = confirm.replace(
      /\+([0-9a-z]+)@/,
      (_m, t: string) => `+${t.slice(0, -1)}${t.endsWith('a') ? 'b' : 'a'}@`,
    );
    expect(
      (await post(listMx.port, leaver.address, altered, mail(leaver.address, altered, 'Re', '')))
        .rcpt,
    ).toMatch(/^550 5\.7\.1/);
    expect((await keyStore.listMembers(LIST)).map((m) => m.address)).toContain(leaver.address);

    const ownerBefore = (await storedInbox(path.store, owner.address)).length;
    const confirmed = await post(
      listMx.port,
      leaver.address,
      confirm,
      mail(leaver.address, confirm, 'Re: Confirm', 'yes'),
    );
    expect(confirmed.data).toMatch(/^250 .*has left team@lists\.test/);
    expect((await keyStore.listMembers(LIST)).map((m) => m.address)).not.toContain(leaver.address);
    expect(await keyStore.listKeysForMember(leaver.address)).toHaveLength(0);
    const ownerInbox = await storedInbox(path.store, owner.address);
    expect(ownerInbox).toHaveLength(ownerBefore + 1);
    expect(await noticeText(ownerInbox.at(-1)!, owner.group)).toContain(
      `recrypt list rotate ${LIST}`,
    );
    // The same confirmation again: they are no member any more, nothing changes.
    const again = await post(
      listMx.port,
      leaver.address,
      confirm,
      mail(leaver.address, confirm, 'Re', ''),
    );
    expect(again.data).toMatch(/^250 .*not a member/);

    // The next post does not reach them.
    const leaverCount = (await storedInbox(path.store, leaver.address)).length;
    const next = await post(
      listMx.port,
      members[0]!.address,
      LIST,
      mail(members[0]!.address, LIST, 'after', 'POSTMARK2'),
    );
    expect(next.data).toMatch(/^250 /);
    expect(await storedInbox(path.store, leaver.address)).toHaveLength(leaverCount);
    expect(
      (
        await decryptWith((await storedInbox(path.store, members[2]!.address)).at(-1)!, group)
      ).toString('latin1'),
    ).toContain('POSTMARK2');
  });

  it('a moderated list holds a post, tells the owner, and delivers it only on approval', async () => {
    await keyStore.updateList(LIST, { policy: 'moderated' });
    const reader = members[2]!;
    const readerBefore = (await storedInbox(path.store, reader.address)).length;
    const ownerBefore = (await storedInbox(path.store, owner.address)).length;
    const sent = await post(
      listMx.port,
      stranger.address,
      LIST,
      mail(stranger.address, LIST, 'may I?', 'HELDMARK'),
    );
    expect(sent.data).toMatch(/^250 .*held for moderation/);
    expect(await storedInbox(path.store, reader.address)).toHaveLength(readerBefore);
    const held = await listMx.held.list(LIST);
    expect(held).toHaveLength(1);
    expect(held[0]!.mailFrom).toBe(stranger.address);
    const notice = (await storedInbox(path.store, owner.address)).slice(ownerBefore);
    expect(notice).toHaveLength(1);
    expect(await noticeText(notice[0]!, owner.group)).toContain(
      `recrypt list approve ${LIST} ${held[0]!.id}`,
    );
    // The held copy is the list ciphertext: the list key reads it, the gateway's data does not hold it in plaintext.
    const stored = (await listMx.held.get(LIST, held[0]!.id))!;
    expect((await decryptWith(stored.message, group)).toString('latin1')).toContain('HELDMARK');
    // The owner's own posts are not held.
    const own = await post(
      listMx.port,
      owner.address,
      LIST,
      mail(owner.address, LIST, 'news', 'OWNPOST'),
    );
    expect(own.data).toMatch(/^250 .*posted to/);
    // Approval (what the admin API's approve route does) delivers the held bytes to every member.
    await listMx.lists.delivery.deliverPost(LIST, stored.post.mailFrom, stored.message);
    const readerInbox = await storedInbox(path.store, reader.address);
    expect(readerInbox.at(-1)!.equals(stored.message)).toBe(true);
    await remoteMx.waitFor(1);
    await keyStore.updateList(LIST, { policy: 'members' });
  });

  it('a remote member leaves the same way; their confirmation is encrypted to their certificate', async () => {
    const unsubscribe = `team-unsubscribe@${DOMAIN}`;
    const asked = await post(
      listMx.port,
      remote.address,
      unsubscribe,
      mail(remote.address, unsubscribe, 'unsubscribe', ''),
    );
    expect(asked.data).toMatch(/^250 .*confirmation request is on its way/);
    // Copies of earlier posts may still be arriving: find the confirmation by its Subject.
    let request: ReceivedMail | undefined;
    for (let n = 1; request === undefined; n++) {
      request = (await remoteMx.waitFor(n)).find((m) =>
        /^Subject: Confirm: leave/m.test(m.bytes.toString('latin1')),
      );
    }
    expect(request.to).toEqual([remote.address]);
    expect(request.bytes.toString('latin1')).toMatch(/^Content-Type: application\/pkcs7-mime/m);
    expect(await fails(request.bytes, group)).toBe(true);
    const opened = await decryptWith(request.bytes, remote);
    const confirm = (await simpleParser(opened)).replyTo?.value[0]?.address ?? '';
    expect(confirm).toMatch(/^team-confirm\+[0-9a-z]+@lists\.test$/);
    const confirmed = await post(
      listMx.port,
      remote.address,
      confirm,
      mail(remote.address, confirm, 'Re', ''),
    );
    expect(confirmed.data).toMatch(/^250 .*has left team@lists\.test/);
    expect((await keyStore.listMembers(LIST)).map((m) => m.address)).not.toContain(remote.address);
  });
});

describe('malformed and oversized posts to a list', () => {
  const dir = tempDir('lists-malformed-');
  let keyStore: KeyStore;
  let path: ListReadPath;
  let listMx: ListMx;
  let member: ListMemberUser;
  let group: ListGroupKey;

  beforeAll(async () => {
    const world = await listWorld(dir.path, 1, 'open');
    ({ keyStore, group, path } = world);
    member = world.members[0]!;
    listMx = await startListMx(keyStore, path.lmtpPort, DOMAIN, {
      dir: dir.path,
      maxSize: 64 * 1024,
    });
  }, 120_000);

  afterAll(async () => {
    await listMx?.close();
    await path?.stop();
    await keyStore?.close();
    dir.remove();
  });

  it.each([
    [
      'no header/body separator',
      Buffer.from('Subject: only headers\r\nX-Marker: MALFORM1', 'latin1'),
    ],
    [
      'bare LF, 8-bit bytes and a NUL',
      Buffer.from(
        'Subject: caf\xe9\nX-Marker: MALFORM2\n\nbody\x00with nul\nand bare LF\n',
        'latin1',
      ),
    ],
    [
      'a broken S/MIME envelope that only claims to be one',
      Buffer.from(
        'Subject: sealed?\r\nX-Marker: MALFORM3\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n' +
          'Content-Transfer-Encoding: base64\r\n\r\nMIIB!!!not base64 at all\r\n',
        'latin1',
      ),
    ],
    ['no headers at all', Buffer.from('\r\nX-Marker: MALFORM4 in the body\r\n', 'latin1')],
  ])('%s: stored for every member, losslessly, encrypted once', async (_name, message) => {
    const before = (await storedInbox(path.store, member.address)).length;
    const sent = await post(listMx.port, 'anyone@elsewhere.test', LIST, message);
    expect(sent.data).toMatch(/^250 .*stored for 2 mailboxes/);
    const copy = (await storedInbox(path.store, member.address))[before]!;
    expect(copy.equals((await storedInbox(path.store, LIST)).at(-1)!)).toBe(true);
    const plain = (await decryptWith(copy, group)).toString('latin1');
    const marker = /MALFORM\d/.exec(message.toString('latin1'))![0];
    expect(plain).toContain(marker);
    expect(plain).toMatch(/^List-Id: .*<team\.lists\.test>/m);
  });

  it('an oversized post is refused (declared: at MAIL FROM; undeclared: after DATA) and nothing is kept', async () => {
    const count = (await storedInbox(path.store, member.address)).length;
    const wire = await SmtpWire.open(listMx.port);
    try {
      await wire.reply();
      await wire.command('EHLO sender.test');
      expect(await wire.command('MAIL FROM:<a@elsewhere.test> SIZE=10000000')).toMatch(
        /^552 5\.3\.4/,
      );
    } finally {
      wire.close();
    }
    const big = Buffer.concat([
      Buffer.from('Subject: big\r\n\r\n', 'latin1'),
      Buffer.alloc(70 * 1024, 'x\r\n'),
    ]);
    expect((await post(listMx.port, 'a@elsewhere.test', LIST, big)).data).toMatch(/^552 5\.3\.4/);
    expect(await storedInbox(path.store, member.address)).toHaveLength(count);
    expect(await listMx.queue.size()).toBe(0);
  });

  it('SMTP-level mistakes get their codes: bad address, DATA before RCPT', async () => {
    const wire = await SmtpWire.open(listMx.port);
    try {
      await wire.reply();
      await wire.command('EHLO sender.test');
      await wire.command('MAIL FROM:<a@elsewhere.test>');
      expect(await wire.command('RCPT TO:<team@@lists.test>')).toMatch(/^(501|553)/);
      expect(await wire.command('DATA')).toMatch(/^503/);
    } finally {
      wire.close();
    }
  });
});
