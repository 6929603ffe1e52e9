/**
 * The composition root's address helpers: which domains are ours (the outbound queue's
 * local hop), and the loopback or public form of a listen address.
 */
import type { KeyStore } from '../keystore/index.js';

/** Whether mail for `domain` is ours: a configured local domain, or one of our users' or lists'. */
export async function servesDomain(
  keyStore: KeyStore,
  localDomains: string[],
  domain: string,
): Promise<boolean> {
  if (localDomains.length > 0) return localDomains.some((d) => d.toLowerCase() === domain);
  const addresses = [
    ...(await keyStore.listUsers()).map((u) => u.address),
    ...(await keyStore.listLists()).map((l) => l.address),
  ];
  return addresses.some((address) => address.slice(address.lastIndexOf('@') + 1) === domain);
}

/** Where this machine reaches a listener bound to `listen`. */
export function loopbackOf(listen: string): string {
  return listen === '0.0.0.0' ? '127.0.0.1' : listen === '::' ? '::1' : listen;
}

/** The host name told to clients for a listener bound to `listen`. */
export function publicHost(listen: string): string {
  return listen === '0.0.0.0' || listen === '::' ? 'localhost' : listen;
}
