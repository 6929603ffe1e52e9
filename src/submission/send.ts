/**
 * Sends one submitted message to its routed recipients (docs/sending.md):
 *
 * * One envelope for everyone with a key: the content is encrypted once and the
 *   envelope gets recipient infos for every local user's group, every remote recipient's
 *   certificate (a published group certificate, or an S/MIME one: RSA recipients get a
 *   KeyTransRecipientInfo) and always the sender's own group (their Sent copy and
 *   their other devices). Mail the client already encrypted is that envelope, untouched.
 * * Remote recipients: that envelope, or for a recipient without a key (policy `send`)
 *   the message as it is, one outbound queue job each. The jobs are prepared first and
 *   committed only once the local copies are stored: a local failure (451) leaves
 *   nothing queued, so the client's retry does not send twice.
 * * Local users: one LMTP transaction with the same envelope (the MX's delivery target).
 * * Lists: the list's headers go in and the post is encrypted to the list group, as the
 *   MX does for a post (the list then reaches its members).
 * * The Sent copy last: a failure there is logged, not answered (the mail has gone).
 *
 * Plaintext reaches no queue and no disk for a recipient whose key is known.
 */
import { X509Certificate } from 'node:crypto';
import type { Logger } from 'pino';
import type { OutboundMessage, OutboundQueue } from '../outbound/index.js';
import { wrapMessage, type KeyTransportRecipient } from '../recrypt/index.js';
import { wrapForGroups } from './envelope.js';
import type { DeliveryTarget } from '../smtp/ports.js';
import { SmtpReply } from '../smtp/reply.js';
import type { Route } from './routing.js';
import type { SentCopies } from './sent-copy.js';

export interface SendDeps {
  delivery: DeliveryTarget;
  queue: OutboundQueue;
  sentCopies: SentCopies | null;
  hideSubject: boolean;
  logger: Logger;
}

export interface SendInput {
  /** The authenticated user: envelope sender and owner of the Sent copy. */
  sender: string;
  /** The sender's store user (the directory's mailbox for them). */
  senderMailbox: string;
  senderCertificate: Uint8Array;
  /** The message after the submission fix-ups. */
  message: Uint8Array;
  /** The client sent an S/MIME envelope: it goes everywhere as it is. */
  clientEncrypted: boolean;
  routes: Route[];
}

export interface SendOutcome {
  local: number;
  lists: number;
  remoteEncrypted: number;
  remotePlain: number;
  sentCopy: boolean;
  texts: string[];
}

const tempFailure = () =>
  new SmtpReply(451, '4.3.0', 'Temporary failure storing the message, try again later');

function isRsa(certificate: Uint8Array): boolean {
  return new X509Certificate(certificate).publicKey.asymmetricKeyType === 'rsa';
}

/**
 * The one envelope for the sender and every recipient with a key (certificates
 * deduplicated): key agreement for P-256 certificates, key transport for RSA ones with
 * the scheme their source found (PKCS#1 v1.5 unless the recipient announced OAEP).
 */
export function envelopeFor(
  input: Pick<SendInput, 'message' | 'clientEncrypted' | 'senderCertificate' | 'routes'>,
  hideSubject: boolean,
): Uint8Array {
  if (input.clientEncrypted) return input.message;
  const certificates = new Map<string, Uint8Array>();
  const rsa = new Map<string, KeyTransportRecipient>();
  const key = (certificate: Uint8Array) => Buffer.from(certificate).toString('base64');
  certificates.set(key(input.senderCertificate), input.senderCertificate);
  for (const route of input.routes) {
    if (route.kind === 'local') certificates.set(key(route.certificate), route.certificate);
    if (route.kind !== 'remote-key') continue;
    if (isRsa(route.certificate))
      rsa.set(key(route.certificate), {
        certificate: route.certificate,
        scheme: route.found.rsaKeyTransport ?? 'rsa-pkcs1',
      });
    else certificates.set(key(route.certificate), route.certificate);
  }
  return wrapForGroups(input.message, [...certificates.values()], hideSubject, [...rsa.values()]);
}

export async function sendSubmitted(deps: SendDeps, input: SendInput): Promise<SendOutcome> {
  const envelope = envelopeFor(input, deps.hideSubject);
  const outcome: SendOutcome = {
    local: 0,
    lists: 0,
    remoteEncrypted: 0,
    remotePlain: 0,
    sentCopy: false,
    texts: [],
  };
  const jobs: OutboundMessage[] = [];
  for (const route of input.routes) {
    if (route.kind === 'remote-key' || route.kind === 'remote-plain') {
      // Without a key the message goes as it is (policy `send`); with one, only ciphertext.
      const plain = route.kind === 'remote-plain' && !input.clientEncrypted;
      jobs.push({
        mailFrom: input.sender,
        to: route.address,
        message: plain ? input.message : envelope,
        origin: { kind: 'submission', sender: input.sender },
      });
      if (plain) outcome.remotePlain += 1;
      else outcome.remoteEncrypted += 1;
    }
  }
  const batch = jobs.length > 0 ? await deps.queue.prepare(jobs) : null;
  try {
    const mailboxes = [
      ...new Set(input.routes.flatMap((r) => (r.kind === 'local' ? [r.mailbox] : []))),
    ];
    if (mailboxes.length > 0) {
      let results;
      try {
        results = await deps.delivery.deliver({ mailFrom: input.sender, mailboxes }, envelope);
      } catch (error) {
        deps.logger.warn({ err: { name: (error as Error).name } }, 'store unavailable');
        throw tempFailure();
      }
      const stored = results.filter((r) => r.status === 'stored').length;
      deps.logger.info({ mailboxes, results }, 'local delivery');
      if (stored < mailboxes.length) {
        if (results.some((r) => r.status === 'rejected') && stored === 0)
          throw new SmtpReply(554, '5.2.0', 'The mail store refused the message');
        throw tempFailure();
      }
      outcome.local = mailboxes.length;
    }
    for (const route of input.routes) {
      if (route.kind !== 'list') continue;
      if (route.list.kind === 'list-command') {
        outcome.texts.push(await route.list.run(input.sender));
        continue;
      }
      const copy = input.clientEncrypted
        ? input.message
        : wrapMessage(route.list.prepare(input.message), route.list.groupCertificate, {
            hideSubject: deps.hideSubject,
          });
      outcome.texts.push(await route.list.accept(input.sender, copy));
      outcome.lists += 1;
    }
  } catch (error) {
    await batch?.abort().catch(() => undefined);
    throw error;
  }
  await batch?.commit();
  if (deps.sentCopies !== null) {
    try {
      await deps.sentCopies.store(input.senderMailbox, envelope);
      outcome.sentCopy = true;
    } catch (error) {
      deps.logger.warn(
        { err: { name: (error as Error).name, message: (error as Error).message.slice(0, 200) } },
        'Sent copy not stored',
      );
    }
  }
  return outcome;
}
