/**
 * Moderated lists, admin API: the list owner's signed requests to the real admin
 * server (TLS, SQLite key store) over a real held-post store on disk. Delivery and notices
 * are recorded here: the real ListPostDelivery and NoticeSender are wired into the gateway
 * by src/gateway/start.ts and tested end to end with the MX; these tests pin what the
 * routes hand them (the exact held bytes, the notice) and what they do when those fail.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileHeldPostStore } from '../../src/lists/held-posts.js';
import type {
  ListPostDelivery,
  Notice,
  NoticeSender,
  PostDeliveryResult,
} from '../../src/lists/ports.js';
import { createList, type ListSecrets } from '../../src/owner/lists.js';
import type { OwnerKey } from '../../src/owner/key-file.js';
import { wrapMessage } from '../../src/recrypt/index.js';
import { SmtpReply } from '../../src/smtp/reply.js';
import {
  ADMIN_TOKEN,
  api,
  enrolBody,
  makeOwner,
  startApiGateway,
  type ApiGateway,
  type Signer,
} from '../helpers/cli-api.js';
import { tempDir } from '../helpers/tmp.js';

const LIST = 'mods@example.org';
const POSTER = 'poster@example.net';
const held = (rest = '') => `/v1/owner/lists/${encodeURIComponent(LIST)}/held${rest}`;

class RecordingDelivery implements ListPostDelivery {
  calls: Array<{ list: string; mailFrom: string; ciphertext: Buffer }> = [];
  /** When set, the next delivery fails with it. */
  failWith: Error | null = null;
  /** When set, deliveries wait for it (and `entered` resolves once one has started). */
  gate: Promise<void> | null = null;
  entered: () => void = () => undefined;

  async deliverPost(
    list: string,
    mailFrom: string,
    ciphertext: Uint8Array,
  ): Promise<PostDeliveryResult> {
    this.entered();
    if (this.gate !== null) await this.gate;
    const failure = this.failWith;
    this.failWith = null;
    if (failure !== null) throw failure;
    this.calls.push({ list, mailFrom, ciphertext: Buffer.from(ciphertext) });
    return { local: 3, remote: 1 };
  }
}

class RecordingNotices implements NoticeSender {
  sent: Notice[] = [];
  failNext = false;
  async send(notice: Notice): Promise<void> {
    if (this.failNext) {
      this.failNext = false;
      throw new Error('queue full');
    }
    this.sent.push(notice);
  }
}

describe('moderation routes', () => {
  const dir = tempDir('recrypt-held-api-');
  const store = new FileHeldPostStore({ dataDir: dir.path });
  const delivery = new RecordingDelivery();
  const notices = new RecordingNotices();
  let gw: ApiGateway;
  let bare: ApiGateway;
  const signers: Record<string, Signer> = {};
  let secrets: ListSecrets;

  async function enrolled(on: ApiGateway, name: string, signer = name): Promise<OwnerKey> {
    const address = `${name}@example.org`;
    const owner = await makeOwner(address);
    signers[signer] = owner.signer;
    const added = await api(on, 'POST', '/v1/users', { token: ADMIN_TOKEN, body: { address } });
    const token = added.json.enrolmentToken as string;
    expect((await api(on, 'POST', '/v1/enrol', { body: enrolBody(owner, token) })).status).toBe(
      200,
    );
    return {
      address,
      gateway: `https://127.0.0.1:${on.admin.port}`,
      gatewayCa: on.cert,
      ownerCaSecret: owner.caSecret,
      ownerCaCertificate: owner.ca,
      groupSecret: owner.groupSecret,
      groupCertificate: owner.group,
    };
  }

  /** A post as the MX holds it: S/MIME to the list group. */
  async function holdPost(subject: string): Promise<{ id: string; bytes: Buffer }> {
    const plain = Buffer.from(`From: ${POSTER}\r\nSubject: ${subject}\r\n\r\nbody\r\n`);
    const bytes = Buffer.from(wrapMessage(plain, secrets.groups[0]!.certificate));
    const post = await store.hold(LIST, POSTER, bytes);
    return { id: post.id, bytes };
  }

  beforeAll(async () => {
    gw = await startApiGateway({ moderation: { held: store, delivery, notices } });
    const owner = await enrolled(gw, 'owner');
    await enrolled(gw, 'alice');
    ({ secrets } = await createList(owner, { address: LIST, policy: 'moderated' }));
    bare = await startApiGateway();
    const bareOwner = await enrolled(bare, 'owner', 'bareOwner');
    await createList(bareOwner, { address: LIST, policy: 'moderated' });
  });
  afterAll(async () => {
    await gw?.close();
    await bare?.close();
    dir.remove();
  });

  it('shows the owner the held posts (sender, size, time) and their exact bytes', async () => {
    const { id, bytes } = await holdPost('first');
    const listed = await api(gw, 'GET', held(), { sign: signers.owner! });
    expect(listed.status).toBe(200);
    expect(listed.json.list).toBe(LIST);
    const entry = (listed.json.held as Array<Record<string, unknown>>).find((p) => p.id === id);
    expect(entry).toEqual({
      id,
      mailFrom: POSTER,
      bytes: bytes.length,
      received: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) as unknown,
    });
    const one = await api(gw, 'GET', held(`/${id}`), { sign: signers.owner! });
    expect(one.status).toBe(200);
    expect(Buffer.from(one.json.message as string, 'base64').equals(bytes)).toBe(true);
    expect(one.json.post).toEqual(entry);
  });

  it('answers 403 to anyone but the list owner, 404 for unknown lists and posts', async () => {
    const { id } = await holdPost('private');
    const alice = signers.alice!;
    for (const [method, path] of [
      ['GET', held()],
      ['GET', held(`/${id}`)],
      ['POST', held(`/${id}/approve`)],
      ['POST', held(`/${id}/reject`)],
    ] as const) {
      const reply = await api(gw, method, path, { sign: alice });
      expect(reply.status, `${method} ${path}`).toBe(403);
      expect((await api(gw, method, path)).status).toBe(401);
      const unknownList = path.replace(encodeURIComponent(LIST), 'nolist%40example.org');
      expect((await api(gw, method, unknownList, { sign: signers.owner! })).status).toBe(404);
    }
    for (const bad of ['0123456789abcdef0123456789abcdef', '..%2F..%2Fkeystore.sqlite', '.', 'x']) {
      for (const [method, rest] of [
        ['GET', ''],
        ['POST', '/approve'],
        ['POST', '/reject'],
      ] as const) {
        const reply = await api(gw, method, held(`/${bad}${rest}`), { sign: signers.owner! });
        expect(reply.status, `${method} ${bad}${rest}`).toBe(404);
        expect(reply.json.error).toBe('held post not found');
      }
    }
    expect(delivery.calls).toEqual([]);
    expect(notices.sent).toEqual([]);
    expect((await store.get(LIST, id))?.post.id).toBe(id);
  });

  it('approval delivers the exact held bytes, then the post is no longer held', async () => {
    const { id, bytes } = await holdPost('approve me');
    const reply = await api(gw, 'POST', held(`/${id}/approve`), { sign: signers.owner! });
    expect(reply.status).toBe(200);
    expect(reply.json).toEqual({
      list: LIST,
      id,
      approved: true,
      delivered: { local: 3, remote: 1 },
    });
    expect(delivery.calls).toHaveLength(1);
    expect(delivery.calls[0]!.list).toBe(LIST);
    expect(delivery.calls[0]!.mailFrom).toBe(POSTER);
    expect(delivery.calls[0]!.ciphertext.equals(bytes)).toBe(true);
    expect(await store.get(LIST, id)).toBeNull();
    const again = await api(gw, 'POST', held(`/${id}/approve`), { sign: signers.owner! });
    expect(again.status).toBe(404);
    expect(delivery.calls).toHaveLength(1);
    delivery.calls = [];
  });

  it('a failed delivery answers 503 and keeps the post held', async () => {
    const { id, bytes } = await holdPost('not yet');
    delivery.failWith = new SmtpReply(451, '4.3.0', 'Temporary failure storing the message');
    const failed = await api(gw, 'POST', held(`/${id}/approve`), { sign: signers.owner! });
    expect(failed.status).toBe(503);
    expect(failed.json.error).toMatch(/stays held: 451 4\.3\.0 Temporary failure/);
    expect((await store.get(LIST, id))?.message.equals(bytes)).toBe(true);
    delivery.failWith = new Error('ECONNREFUSED 10.0.0.7:24');
    const opaque = await api(gw, 'POST', held(`/${id}/approve`), { sign: signers.owner! });
    expect(opaque.status).toBe(503);
    expect(opaque.json.error).not.toMatch(/ECONNREFUSED/);
    const retried = await api(gw, 'POST', held(`/${id}/approve`), { sign: signers.owner! });
    expect(retried.status).toBe(200);
    expect(delivery.calls.map((c) => c.ciphertext.equals(bytes))).toEqual([true]);
    delivery.calls = [];
  });

  it('a post being approved cannot be approved or rejected again meanwhile', async () => {
    const { id } = await holdPost('slow');
    let release!: () => void;
    delivery.gate = new Promise<void>((resolve) => (release = resolve));
    const started = new Promise<void>((resolve) => (delivery.entered = resolve));
    const first = api(gw, 'POST', held(`/${id}/approve`), { sign: signers.owner! });
    await started;
    for (const step of ['approve', 'reject']) {
      const second = await api(gw, 'POST', held(`/${id}/${step}`), { sign: signers.owner! });
      expect(second.status, step).toBe(409);
    }
    release();
    expect((await first).status).toBe(200);
    delivery.gate = null;
    expect(delivery.calls).toHaveLength(1);
    expect(notices.sent).toEqual([]);
    delivery.calls = [];
  });

  it('rejection tells the poster from the list’s -owner address, with the reason', async () => {
    const { id } = await holdPost('reject me');
    const reply = await api(gw, 'POST', held(`/${id}/reject`), {
      sign: signers.owner!,
      body: { reason: 'Off topic.\r\nPlease read the list rules.' },
    });
    expect(reply.status).toBe(200);
    expect(reply.json).toEqual({ list: LIST, id, rejected: true, notified: POSTER });
    expect(notices.sent).toHaveLength(1);
    const notice = notices.sent[0]!;
    expect(notice.to).toBe(POSTER);
    expect(notice.from).toBe('mods-owner@example.org');
    expect(notice.subject).toBe(`Your post to ${LIST} was rejected`);
    expect(notice.text).toContain(`Your post to the list ${LIST}`);
    expect(notice.text).toContain('was rejected by the moderator');
    expect(notice.text).toContain('Off topic.\nPlease read the list rules.');
    expect(notice.headers).toEqual({ 'Auto-Submitted': 'auto-replied' });
    expect(await store.get(LIST, id)).toBeNull();
    expect(delivery.calls).toEqual([]);

    const plain = await holdPost('no reason');
    expect(
      (await api(gw, 'POST', held(`/${plain.id}/reject`), { sign: signers.owner! })).status,
    ).toBe(200);
    expect(notices.sent[1]!.text).not.toMatch(/Reason/);
    notices.sent = [];
  });

  it('rejection refuses a bad reason and keeps the post when the notice cannot be queued', async () => {
    const { id } = await holdPost('kept');
    for (const body of [{ reason: 42 }, { reason: 'x'.repeat(2001) }]) {
      const bad = await api(gw, 'POST', held(`/${id}/reject`), { sign: signers.owner!, body });
      expect(bad.status).toBe(400);
    }
    const notJson = await api(gw, 'POST', held(`/${id}/reject`), {
      sign: signers.owner!,
      rawBody: Buffer.from('reason=spam'),
    });
    expect(notJson.status).toBe(400);
    notices.failNext = true;
    const failed = await api(gw, 'POST', held(`/${id}/reject`), { sign: signers.owner! });
    expect(failed.status).toBe(503);
    expect((await store.get(LIST, id))?.post.id).toBe(id);
    expect(notices.sent).toEqual([]);
  });

  it('without moderation parts the routes answer 503 "moderation not configured"', async () => {
    for (const [method, path] of [
      ['GET', held()],
      ['GET', held('/0123456789abcdef0123456789abcdef')],
      ['POST', held('/0123456789abcdef0123456789abcdef/approve')],
      ['POST', held('/0123456789abcdef0123456789abcdef/reject')],
    ] as const) {
      const reply = await api(bare, method, path, { sign: signers.bareOwner! });
      expect(reply.status, `${method} ${path}`).toBe(503);
      expect(reply.json.error).toBe('moderation not configured');
    }
  });
});
