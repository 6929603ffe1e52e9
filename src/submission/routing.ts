/**
 * Where each recipient of a submitted message goes, decided at RCPT so that a refusal is
 * a 5xx the client shows at once (docs/sending.md "Which key"):
 *
 * 1. a user or list of this gateway (the MX's own directory): encrypted to their group
 *    key and delivered locally, as the MX does;
 * 2.–4. a key found by the key sources, in their order (key-sources.ts: the verified
 *    published profile, an SMIMEA record, a certificate harvested from signed mail):
 *    encrypted to it, sent through the outbound queue;
 * 5. otherwise the policy: sent as it is (the queue uses TLS when the MX offers it), or
 *    refused with 550 5.7.1 "no key for …; not sent" when `withoutKey` is `refuse`, the
 *    sender's own profile requires encryption (sender-policy.ts), or a source verified
 *    that the recipient requires encryption.
 */
import type { RecipientDirectory, RecipientLookup } from '../smtp/ports.js';
import { SmtpReply } from '../smtp/reply.js';
import type { FoundKey, KeyDiscovery } from './key-sources.js';

export type ListLookup = Extract<RecipientLookup, { kind: 'list' | 'list-command' }>;

export type Route =
  | { kind: 'local'; address: string; mailbox: string; certificate: Uint8Array }
  | { kind: 'list'; address: string; list: ListLookup }
  | {
      kind: 'remote-key';
      address: string;
      certificate: Uint8Array;
      found: FoundKey;
    }
  | { kind: 'remote-plain'; address: string; reason: string };

export interface RouterOptions {
  directory: RecipientDirectory;
  discovery: KeyDiscovery;
  withoutKey: 'send' | 'refuse';
  /** The sender's own profile requires encryption (sender-policy.ts): no plaintext for them. */
  senderRequiresEncryption?: boolean;
}

export const submissionReplies = {
  noKey: (address: string) =>
    new SmtpReply(550, '5.7.1', `No key for ${address}; not sent (encryption is required)`),
  unknownLocal: () => new SmtpReply(550, '5.1.1', 'No such user here'),
  notEnrolled: () =>
    new SmtpReply(450, '4.2.1', 'Recipient has not set up their mailbox yet, try again later'),
  unavailable: () =>
    new SmtpReply(451, '4.3.0', 'Temporary failure looking up the recipient, try again later'),
};

/** The route for `address`, or throws the SmtpReply to answer RCPT with. */
export async function routeRecipient(
  options: RouterOptions,
  address: string,
  sender: string,
): Promise<Route> {
  let lookup: RecipientLookup;
  try {
    lookup = await options.directory.resolve(address);
  } catch {
    throw submissionReplies.unavailable();
  }
  switch (lookup.kind) {
    case 'local':
      return {
        kind: 'local',
        address,
        mailbox: lookup.mailbox,
        certificate: lookup.groupCertificate,
      };
    case 'list':
    case 'list-command': {
      const refusal = lookup.refusalFor(sender);
      if (refusal !== null) throw new SmtpReply(550, '5.7.1', refusal);
      return { kind: 'list', address, list: lookup };
    }
    case 'pending':
      throw submissionReplies.notEnrolled();
    case 'unknown':
      throw submissionReplies.unknownLocal();
    case 'not-local':
      break;
  }
  const found = await options.discovery.lookup(address);
  if (found.kind === 'key') {
    return { kind: 'remote-key', address, certificate: found.certificate, found };
  }
  if (
    options.withoutKey === 'refuse' ||
    options.senderRequiresEncryption === true ||
    found.requireEncryption === true
  )
    throw submissionReplies.noKey(address);
  return { kind: 'remote-plain', address, reason: found.reason };
}
