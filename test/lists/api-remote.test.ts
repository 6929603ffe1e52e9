/**
 * Remote members through the real admin API (TLS, SQLite key store): a person
 * who is not a user of the gateway joins with their own openssl-made certificate. The
 * gateway ends with rk = g_list·d⁻¹ only; every bad certificate, signature or invite is
 * a clear 4xx that stores nothing and leaves the invite usable.
 */
import type { KeyObject } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REMOTE_JOINS_PER_MINUTE } from '../../src/admin/list-remote.js';
import { remoteJoinMessage, signRemoteJoin } from '../../src/admin/remote-join-proof.js';
import { OwnerError } from '../../src/owner/errors.js';
import type { OwnerKey } from '../../src/owner/key-file.js';
import { decodeJoinToken, encodeJoinToken } from '../../src/owner/list-join.js';
import {
  acceptInvite,
  admitMember,
  createList,
  inviteMember,
  inviteRemoteMember,
  rotateList,
  showList,
  type ListSecrets,
} from '../../src/owner/lists.js';
import { identityFromPem, joinRemote, type Invitation } from '../../src/owner/remote-join.js';
import {
  certificatePublicPoint,
  invertScalar,
  multiplyPoint,
  multiplyScalars,
  randomScalar,
  scalarToBytes,
} from '../../src/recrypt/index.js';
import { api, startApiGateway, type ApiGateway } from '../helpers/cli-api.js';
import { enrolOwner } from '../helpers/owner-enrolment.js';
import { makeRemoteIdentity, type RemoteIdentity } from '../helpers/remote-identity.js';
import { tempDir } from '../helpers/tmp.js';

const LIST = 'dev@example.org';
const FAR = 'far@elsewhere.example';
const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');

async function refusal(promise: Promise<unknown>): Promise<OwnerError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(OwnerError);
  return error as OwnerError;
}

function joinBody(invitation: Invitation, certificate: Uint8Array, key: KeyObject) {
  const tau = randomScalar();
  const message = remoteJoinMessage(invitation.list, invitation.member, invitation.invite, tau);
  return {
    invite: invitation.invite,
    certificate: b64(certificate),
    tau: b64(scalarToBytes(tau)),
    signature: b64(signRemoteJoin(message, key)),
  };
}

describe('remote list members through the admin API', () => {
  const dir = tempDir('recrypt-remote-');
  let gw: ApiGateway;
  let owner: OwnerKey;
  let alice: OwnerKey;
  let secrets: ListSecrets;
  let far: RemoteIdentity;

  const enrolled = async (address: string): Promise<OwnerKey> =>
    (await enrolOwner(gw, address)).key;

  const identity = (name: string, extra: Partial<Parameters<typeof makeRemoteIdentity>[0]> = {}) =>
    makeRemoteIdentity({ dir: dir.path, name, address: FAR, ...extra });

  beforeAll(async () => {
    gw = await startApiGateway();
    owner = await enrolled('owner@example.org');
    alice = await enrolled('alice@example.org');
    ({ secrets } = await createList(owner, { address: LIST }));
    far = await identity('far', { keyUsage: 'digitalSignature,keyAgreement' });
  });
  afterAll(async () => {
    await gw?.close();
    dir.remove();
  });

  it('invites: --remote for an address elsewhere; a plain invite for it says to use --remote', async () => {
    const unknown = await refusal(inviteMember(owner, LIST, FAR));
    expect(unknown.status).toBe(404);
    expect(unknown.message).toMatch(/--remote/);
    const local = await refusal(inviteRemoteMember(owner, LIST, alice.address));
    expect(local.status).toBe(409);
    expect(local.message).toMatch(/without --remote/);
    expect((await refusal(inviteRemoteMember(alice, LIST, FAR))).status).toBe(403);
    const invitation = await inviteRemoteMember(owner, LIST, 'Far@Elsewhere.example');
    expect(invitation).toMatchObject({ list: LIST, member: FAR, gateway: owner.gateway });
    // A remote invite is not a local one.
    expect((await refusal(acceptInvite(alice, LIST, invitation.invite))).status).toBe(403);
  });

  it('refuses bad certificates, signatures and invites with a 4xx, storing nothing', async () => {
    const invitation = await inviteRemoteMember(owner, LIST, FAR);
    const attempt = async (body: Record<string, unknown>, status: number, reason: RegExp) => {
      const reply = await api(gw, 'POST', '/v1/list-joins/remote', { body });
      expect(reply.status).toBe(status);
      expect(reply.json.error).toMatch(reason);
    };
    const p384 = await identity('p384', { curve: 'P-384' });
    await attempt(joinBody(invitation, p384.der, p384.key), 400, /P-256/);
    const other = await makeRemoteIdentity({
      dir: dir.path,
      name: 'other',
      address: 'other@elsewhere.example',
    });
    await attempt(joinBody(invitation, other.der, other.key), 400, /names neither/);
    const signOnly = await identity('sign-only', { keyUsage: 'digitalSignature' });
    await attempt(joinBody(invitation, signOnly.der, signOnly.key), 400, /keyAgreement/);
    await attempt(joinBody(invitation, far.der, other.key), 400, /^signature/);
    const tampered = { ...joinBody(invitation, far.der, far.key), tau: b64(scalarToBytes(2n)) };
    await attempt(tampered, 400, /^signature/);
    await attempt({ ...joinBody(invitation, far.der, far.key), certificate: 'AAAA' }, 400, /DER/);
    const shortLived = await identity('short', { days: 1 });
    gw.skew.ms = 2 * 24 * 3600 * 1000;
    try {
      await attempt(joinBody(invitation, shortLived.der, shortLived.key), 400, /expired/);
    } finally {
      gw.skew.ms = 0;
    }
    const localInvite = await inviteMember(owner, LIST, alice.address);
    await attempt(
      joinBody({ ...invitation, invite: localInvite }, far.der, far.key),
      403,
      /user of this gateway/,
    );
    await attempt(
      { ...joinBody(invitation, far.der, far.key), invite: 'x'.repeat(40) },
      400,
      /invite/,
    );
    expect(await gw.keyStore.listMembers(LIST)).toEqual([]);
    expect(await gw.keyStore.listKeysForMember(FAR)).toEqual([]);

    // None of that used the invite up: it still joins, once.
    const token = await joinRemote(invitation, identityFromPem(far.keyFile, far.certFile));
    const replay = await refusal(
      joinRemote(invitation, identityFromPem(far.keyFile, far.certFile)),
    );
    expect(replay.status).toBe(409);
    // A join token admits only with the certificate its τ was sealed to.
    const swapped = encodeJoinToken({ ...decodeJoinToken(token), certificate: b64(other.der) });
    expect((await refusal(admitMember(owner, secrets, swapped))).status).toBe(400);
    expect(await gw.keyStore.listKeysForMember(FAR)).toEqual([]);
    expect(await admitMember(owner, secrets, token)).toBe(FAR);
    expect((await refusal(admitMember(owner, secrets, token))).status).toBe(409);
  });

  it('stores g_list·d⁻¹ for the certificate key, shows the member as remote, re-keys on rotation', async () => {
    // Also a certificate that names the address only in its subject, with no keyUsage.
    const subjectOnly = await makeRemoteIdentity({
      dir: dir.path,
      name: 'subject-only',
      address: 'Near@Elsewhere.example',
      subjectEmailOnly: true,
    });
    const invitation = await inviteRemoteMember(owner, LIST, 'near@elsewhere.example');
    const token = await joinRemote(
      invitation,
      identityFromPem(subjectOnly.keyFile, subjectOnly.certFile),
    );
    expect(await admitMember(owner, secrets, token)).toBe('near@elsewhere.example');

    const { members } = await showList(owner, LIST);
    expect(members?.find((m) => m.address === FAR)?.remote).toBe(true);
    const d = identityFromPem(far.keyFile, far.certFile).secret;
    const gList = secrets.groups[0]!.secret;
    const [key] = await gw.keyStore.listKeysForMember(FAR);
    expect(key!.rk).toBe(multiplyScalars(gList, invertScalar(d)));
    const D = certificatePublicPoint(far.der);
    const G = certificatePublicPoint(secrets.groups[0]!.certificate);
    expect(Buffer.from(multiplyPoint(D, key!.rk)).equals(Buffer.from(G))).toBe(true);

    secrets = await rotateList(owner, secrets);
    const next = secrets.groups[1]!;
    const rotated = (await gw.keyStore.listKeysForMember(FAR)).find(
      (k) => k.groupId === next.groupId,
    );
    expect(
      Buffer.from(multiplyPoint(D, rotated!.rk)).equals(
        Buffer.from(certificatePublicPoint(next.certificate)),
      ),
    ).toBe(true);
  });

  it('limits remote joins per client address and minute (429), then lets them through again', async () => {
    const invitation = await inviteRemoteMember(owner, LIST, 'late@elsewhere.example');
    const late = await makeRemoteIdentity({
      dir: dir.path,
      name: 'late',
      address: 'late@elsewhere.example',
    });
    const statuses: number[] = [];
    for (let i = 0; i <= REMOTE_JOINS_PER_MINUTE; i++)
      statuses.push(
        (await api(gw, 'POST', '/v1/list-joins/remote', { body: { invite: 'x'.repeat(40) } }))
          .status,
      );
    expect(statuses.at(-1)).toBe(429);
    const limited = await api(gw, 'POST', '/v1/list-joins/remote', {
      body: joinBody(invitation, late.der, late.key),
    });
    expect(limited.status).toBe(429);
    gw.skew.ms = 61_000;
    try {
      const through = await api(gw, 'POST', '/v1/list-joins/remote', {
        body: joinBody(invitation, late.der, late.key),
      });
      expect(through.status).toBe(200);
    } finally {
      gw.skew.ms = 0;
    }
  });
});
