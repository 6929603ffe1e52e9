/**
 * Remote list members for the tests (issue 8): people on another server with an S/MIME
 * P-256 certificate made by the real `openssl` (self-signed, their own DN and serial, not
 * our 82-byte recipient ids; recrypt-remote-pki.ts), and the other server's MX: a real SMTP server (smtp-server)
 * on loopback that keeps what it receives, as the remote members' provider would.
 */
import { SMTPServer } from 'smtp-server';
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

export interface ReceivedMail {
  mailFrom: string;
  rcptTo: string[];
  raw: Buffer;
}

export interface RemoteMx {
  port: number;
  received: ReceivedMail[];
  /** Resolves once `count` messages arrived in total (rejects after `timeoutMs`). */
  waitFor(count: number, timeoutMs?: number): Promise<ReceivedMail[]>;
  /** Answer the next RCPTs with this reply instead of accepting (e.g. 550 or 451). */
  refuseWith(reply: { code: number; message: string } | null): void;
  close(): Promise<void>;
}

export async function startRemoteMx(): Promise<RemoteMx> {
  const received: ReceivedMail[] = [];
  let refusal: { code: number; message: string } | null = null;
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    onRcptTo(_address, _session, callback) {
      if (refusal === null) return callback();
      const error = new Error(refusal.message) as Error & { responseCode: number };
      error.responseCode = refusal.code;
      return callback(error);
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        received.push({
          mailFrom: session.envelope.mailFrom === false ? '' : session.envelope.mailFrom.address,
          rcptTo: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks),
        });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    port,
    received,
    async waitFor(count, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      while (received.length < count) {
        if (Date.now() > deadline)
          throw new Error(
            `remote MX: ${received.length} of ${count} messages after ${timeoutMs} ms`,
          );
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return received;
    },
    refuseWith(reply) {
      refusal = reply;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
