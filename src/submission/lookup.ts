/**
 * `recrypt lookup <address>` (docs/sending.md): what submission would do for a recipient
 * — which key, from where, valid until when — decided exactly as at RCPT (routing.ts),
 * without sending anything. A list of this gateway is reported as such (its posts are
 * encrypted to the list's group). With a sender, their own policy counts too
 * (sender-policy.ts): a recipient without a key is refused for a sender whose profile
 * requires encryption.
 */
import { X509Certificate } from 'node:crypto';
import type { KeyStore } from '../keystore/index.js';
import { keyStoreDirectory } from '../smtp/adapters/index.js';
import type { KeyDiscovery, KeySourceName } from './key-sources.js';
import { senderPolicy } from './sender-policy.js';

export interface LookupAnswer {
  address: string;
  /** What happens: encrypted to a key, sent as is, or refused. */
  action: 'encrypt' | 'send-plain' | 'refuse';
  source: 'local-user' | 'local-list' | KeySourceName | 'none';
  /** Where the key came from (key store, profile URL, signed mail), or why there is none. */
  detail: string;
  validUntil?: Date;
  udf?: string;
  /** RSA recipients: the key transport used (docs/sending.md "RSA recipients"). */
  rsaKeyTransport?: string;
}

export async function lookupRecipient(
  options: {
    keyStore: KeyStore;
    localDomains: string[];
    discovery: KeyDiscovery;
    withoutKey: 'send' | 'refuse';
    /** A user of this gateway sending: their own profile's policy applies too. */
    sender?: string;
  },
  raw: string,
): Promise<LookupAnswer> {
  const address = raw.trim().toLowerCase();
  const lists = await options.keyStore.listLists();
  if (lists.some((list) => list.address.toLowerCase() === address))
    return { address, action: 'encrypt', source: 'local-list', detail: "the list's group key" };
  const directory = keyStoreDirectory({
    keyStore: options.keyStore,
    localDomains: options.localDomains,
  });
  const local = await directory.resolve(address);
  if (local.kind === 'local')
    return {
      address,
      action: 'encrypt',
      source: 'local-user',
      detail: 'group certificate in the key store',
      validUntil: new Date(new X509Certificate(local.groupCertificate).validTo),
    };
  if (local.kind !== 'not-local')
    return {
      address,
      action: 'refuse',
      source: 'none',
      detail: local.kind === 'pending' ? 'local user, not enrolled yet' : 'no such local user',
    };
  const found = await options.discovery.lookup(address);
  if (found.kind === 'key')
    return {
      address,
      action: 'encrypt',
      source: found.source,
      detail: found.provenance,
      validUntil: found.validUntil,
      ...(found.udf === undefined ? {} : { udf: found.udf }),
      ...(found.rsaKeyTransport === undefined ? {} : { rsaKeyTransport: found.rsaKeyTransport }),
    };
  const sender =
    options.sender === undefined ? null : await senderPolicy(options.keyStore, options.sender);
  const refuse =
    options.withoutKey === 'refuse' ||
    found.requireEncryption === true ||
    sender?.requireEncryption === true;
  return {
    address,
    action: refuse ? 'refuse' : 'send-plain',
    source: 'none',
    detail: sender === null ? found.reason : `${found.reason}; ${sender.reason}`,
  };
}
