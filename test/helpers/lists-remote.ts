/**
 * Remote list members for the tests: people on another server with an S/MIME
 * P-256 certificate made by the real `openssl` (self-signed, their own DN and serial, not
 * our 82-byte recipient ids; recrypt-remote-pki.ts). Their provider's MX is the outbound
 * tests' RemoteMx (outbound-remote.ts).
 */
import { blindDeviceSecret, gatewayUnblind, ownerRespond } from '../../src/recrypt/blinded.js';
import { recipientIdOf } from '../../src/recrypt/certificates.js';
import type { KeyStore, MailingList } from '../../src/keystore/index.js';
import type { ListGroupKey } from './lists-world.js';
import { selfSignedRemote, type RemoteIdentity } from './recrypt-remote-pki.js';

export interface RemoteMember extends RemoteIdentity {
  address: string;
  /** The certificate's IssuerAndSerialNumber, lowercase hex. */
  groupId: string;
}

/** A remote member with a self-signed certificate made by `openssl req -x509` (their own DN and serial). */
export function makeRemoteMember(
  dir: string,
  address: string,
  subject: string,
  serial: string,
): RemoteMember {
  const identity = selfSignedRemote(dir, address.replace(/[^a-z0-9.-]/gi, '_'), subject, serial);
  return {
    ...identity,
    address,
    groupId: Buffer.from(recipientIdOf(identity.certDer)).toString('hex'),
  };
}

/** The blinded join with the certificate's key in the member group's place. */
export async function remoteBlindedJoin(
  store: KeyStore,
  list: MailingList,
  listGroup: ListGroupKey,
  member: RemoteMember,
): Promise<void> {
  const request = blindDeviceSecret(member.secret);
  const beta = ownerRespond(listGroup.secret, request.toOwner);
  await store.putRemoteListMember(
    list.address,
    member.address,
    member.certDer,
    member.groupId,
    gatewayUnblind(beta, request.toGateway),
  );
}
