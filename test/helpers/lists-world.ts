/**
 * A small world for the list tests: members with their own owner CA, group
 * and devices (secrets kept, PEM files for openssl), enrolled in a key store with their
 * devices; a list whose group secret only the "list owner" here holds; joins by the
 * blinded issue, exactly as the two CLIs and the gateway would split it.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hashDeviceCredential, type KeyStore, type MailingList } from '../../src/keystore/index.js';
import { blindDeviceSecret, gatewayUnblind, ownerRespond } from '../../src/recrypt/blinded.js';
import {
  issueDeviceCertificate,
  issueGroupCertificate,
  issueOwnerCa,
  recipientIdOf,
  spkiOfPoint,
  toPem,
} from '../../src/recrypt/certificates.js';
import {
  invertScalar,
  multiplyScalars,
  privateKeyObject,
  publicPoint,
  randomScalar,
  recryptionKey,
} from '../../src/recrypt/scalar.js';
import type { Scalar } from '../../src/recrypt/types.js';
import type { PemIdentity } from './proxy-pki.js';

export interface ListDevice extends PemIdentity {
  secret: Scalar;
  password: string;
  /** The key store's record id. */
  id: string;
}

export interface ListMemberUser {
  address: string;
  ca: { certificate: Uint8Array; secret: Scalar };
  groupSecret: Scalar;
  group: PemIdentity;
  groupId: string;
  devices: ListDevice[];
}

export interface ListGroupKey extends PemIdentity {
  secret: Scalar;
  groupId: string;
}

function keyPem(secret: Scalar): string {
  return privateKeyObject(secret).export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** Writes a certificate and its key for openssl; the file name is derived from `name`. */
export function writeIdentity(
  dir: string,
  name: string,
  certDer: Uint8Array,
  secret: Scalar,
): PemIdentity {
  const safe = name.replace(/[^a-z0-9.-]/gi, '_');
  const certPath = join(dir, `${safe}.crt`);
  const keyPath = join(dir, `${safe}.key`);
  writeFileSync(certPath, toPem(certDer));
  writeFileSync(keyPath, keyPem(secret), { mode: 0o600 });
  return { certDer, certPath, keyPath };
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

/**
 * A user enrolled in `store` with `deviceCount` devices, each with rk = g·d⁻¹. Device
 * passwords are hashed with the account's salt, as the owner's CLI does: a login derives
 * one key, not one per device besides the account's.
 */
export async function addMember(
  store: KeyStore,
  dir: string,
  address: string,
  deviceCount: number,
  credentialHash?: string,
): Promise<ListMemberUser> {
  const now = new Date();
  const ca = await issueOwnerCa({ now });
  const g = randomScalar();
  const groupCert = await issueGroupCertificate({
    ca: ca.certificate,
    caSecret: ca.secret,
    publicKey: publicPoint(g),
    address,
    now,
  });
  const groupId = hex(recipientIdOf(groupCert));
  await store.addUser({ address });
  const token = await store.createEnrolmentToken(address, 60_000);
  await store.enrol(address, token, {
    ownerCaCertificate: ca.certificate,
    groupCertificate: groupCert,
    groupId,
    ownerKeySpki: spkiOfPoint(publicPoint(randomScalar())),
  });
  const devices: ListDevice[] = [];
  for (let i = 0; i < deviceCount; i++) {
    const d = randomScalar();
    const name = `device-${i + 1}`;
    const certDer = await issueDeviceCertificate({
      ca: ca.certificate,
      caSecret: ca.secret,
      publicKey: publicPoint(d),
      address,
      name,
      now,
    });
    const password = `pw-${i}-${Math.random().toString(36).slice(2)}`;
    const added = await store.addDevice({
      ownerAddress: address,
      name,
      certificate: certDer,
      deviceId: hex(recipientIdOf(certDer)),
      client: 'standard',
      credentialHash: credentialHash ?? (await hashDeviceCredential(password, address)),
      keys: new Map([[groupId, recryptionKey(g, d)]]),
    });
    devices.push({
      ...writeIdentity(dir, `${address}-${name}`, certDer, d),
      secret: d,
      password,
      id: added.id,
    });
  }
  return {
    address,
    ca,
    groupSecret: g,
    group: writeIdentity(dir, `${address}-group`, groupCert, g),
    groupId,
    devices,
  };
}

/** A fresh list group key, certified by the list owner's CA. */
export async function newListGroup(
  dir: string,
  owner: ListMemberUser,
  listAddress: string,
  tag: string,
): Promise<ListGroupKey> {
  const secret = randomScalar();
  const certDer = await issueGroupCertificate({
    ca: owner.ca.certificate,
    caSecret: owner.ca.secret,
    publicKey: publicPoint(secret),
    address: listAddress,
    now: new Date(),
  });
  return {
    ...writeIdentity(dir, `${listAddress}-${tag}`, certDer, secret),
    secret,
    groupId: hex(recipientIdOf(certDer)),
  };
}

/**
 * The blinded join: the member side blinds g_member (α to the list owner, τ to the
 * gateway), the list owner answers β = g_list·α, the gateway stores rk = β·τ.
 */
export async function blindedJoin(
  store: KeyStore,
  list: MailingList,
  listGroup: ListGroupKey,
  member: ListMemberUser,
): Promise<void> {
  const request = blindDeviceSecret(member.groupSecret);
  const beta = ownerRespond(listGroup.secret, request.toOwner);
  await store.putListMember(
    list.address,
    member.address,
    member.groupId,
    gatewayUnblind(beta, request.toGateway),
  );
}

/** δ = g_new·g_old⁻¹, what the list owner's CLI sends once at rotation. */
export function rotationDelta(next: ListGroupKey, current: ListGroupKey): Scalar {
  return multiplyScalars(next.secret, invertScalar(current.secret));
}
