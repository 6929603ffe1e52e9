/**
 * RecipientDirectory over the key store: an address is local when the key store knows the
 * user and the user is enrolled (has a group certificate). The only file of the MX that
 * imports src/keystore.
 *
 * Decisions: a user still pending enrolment has no group certificate, so mail for it
 * cannot be encrypted; the MX answers 450 for a grace period (the sender retries until
 * the owner enrols), then 550 — never stored in plaintext. With no configured local domains, the
 * domains of known users are the local ones (config `smtp.localDomains: []`), read from
 * the key store at most once per `domainCacheMs`.
 *
 * An address that is no user but a mailing list, or one of a list's control addresses,
 * resolves to the list (list-lookup.ts and src/lists). One that is neither but a
 * configured alias, or postmaster@/abuse@ of a served domain (RFC 5321 §4.5.1, RFC 2142),
 * resolves to its target: a user (encrypted to that user's group) or a list; so does
 * `Postmaster` without a domain (RFC 5321 §4.1.1.3). Aliases do not chain.
 */
import { domainToASCII } from 'node:url';
import {
  KeyStoreArgumentError,
  KeyStoreUnavailableError,
  type KeyStore,
  type User,
} from '../../keystore/index.js';
import pino, { type Logger } from 'pino';
import { parseControlAddress } from '../../lists/control-addresses.js';
import type { ListServices } from '../../lists/ports.js';
import { controlLookup, listLookup, type ListLookupOptions } from './list-lookup.js';
import {
  DirectoryUnavailableError,
  type RecipientDirectory,
  type RecipientLookup,
} from '../ports.js';

export interface KeyStoreDirectoryOptions {
  keyStore: KeyStore;
  /** Served domains; empty: the domains of the key store's users. */
  localDomains: string[];
  /** The store (LMTP) user name for a user; default its address lower-cased. */
  mailboxOf?: (user: User) => string;
  domainCacheMs?: number;
  /**
   * What lists do with posts and requests (src/lists). Without it list addresses and
   * their control addresses are unknown here (550 5.1.1).
   */
  lists?: ListServices;
  /** Address → the user or list that receives its mail (exact addresses, any case). */
  aliases?: Record<string, string>;
  /** Where postmaster@ and abuse@ of every served domain go, unless such a user exists. */
  postmaster?: string;
  /** List-Archive URL of a list (RFC 2369); no List-Archive header when absent. */
  listArchiveUrl?: (listAddress: string) => string;
  logger?: Logger;
}

const domainOf = (address: string): string =>
  domainToASCII(address.slice(address.lastIndexOf('@') + 1).toLowerCase());

export function keyStoreDirectory(options: KeyStoreDirectoryOptions): RecipientDirectory {
  const configured = new Set(
    options.localDomains.map((domain) => domainToASCII(domain.toLowerCase())),
  );
  const mailboxOf = options.mailboxOf ?? ((user: User) => user.address.toLowerCase());
  const cacheMs = options.domainCacheMs ?? 60_000;
  let known: { domains: Set<string>; at: number } | undefined;
  const listOptions: ListLookupOptions | undefined =
    options.lists === undefined
      ? undefined
      : {
          keyStore: options.keyStore,
          lists: options.lists,
          logger: options.logger ?? pino({ enabled: false }),
          ...(options.listArchiveUrl !== undefined
            ? { listArchiveUrl: options.listArchiveUrl }
            : {}),
        };

  /** A list, or a list's control address (team-owner@, team-confirm+…@): else null. */
  const resolveList = async (address: string): Promise<RecipientLookup | null> => {
    if (listOptions === undefined) return null;
    const list = await options.keyStore.getList(address);
    if (list !== null) return listLookup(listOptions, list);
    const control = parseControlAddress(address);
    if (control === null) return null;
    const owning = await options.keyStore.getList(control.list).catch(() => null);
    return owning === null ? null : controlLookup(listOptions, control, owning, mailboxOf);
  };

  const isLocalDomain = async (domain: string): Promise<boolean> => {
    if (configured.size > 0) return configured.has(domain);
    if (known === undefined || Date.now() - known.at > cacheMs) {
      const users = await options.keyStore.listUsers();
      known = { domains: new Set(users.map((user) => domainOf(user.address))), at: Date.now() };
    }
    return known.domains.has(domain);
  };

  const aliases = new Map(
    Object.entries(options.aliases ?? {}).map(([from, to]) => [from.toLowerCase(), to]),
  );
  const aliasTarget = (address: string): string | undefined => {
    const exact = aliases.get(address.toLowerCase());
    if (exact !== undefined) return exact;
    const local = address.slice(0, address.lastIndexOf('@')).toLowerCase();
    return local === 'postmaster' || local === 'abuse' ? options.postmaster : undefined;
  };

  const resolveAddress = async (address: string, viaAlias: boolean): Promise<RecipientLookup> => {
    const user = await options.keyStore.getUser(address);
    if (user === null) {
      const list = await resolveList(address);
      if (list !== null) return list;
      const local = await isLocalDomain(domainOf(address));
      if (!local) return { kind: 'not-local' };
      const target = viaAlias ? undefined : aliasTarget(address);
      if (target === undefined) return { kind: 'unknown' };
      const resolved = await resolveAddress(target, true);
      // Aliases deliver here; one naming another domain's address forwards nowhere.
      return resolved.kind === 'not-local' ? { kind: 'unknown' } : resolved;
    }
    if (user.owner === null) return { kind: 'pending', since: user.created };
    const former = await options.keyStore.formerGroups(user.address);
    return {
      kind: 'local',
      mailbox: mailboxOf(user),
      groupCertificate: user.owner.groupCertificate,
      owner: user.address,
      ...(former.length > 0
        ? { formerGroupCertificates: former.map((group) => group.certificate) }
        : {}),
    };
  };

  return {
    async resolve(address): Promise<RecipientLookup> {
      try {
        // `<Postmaster>` without a domain (RFC 5321 §4.1.1.3): the postmaster's target.
        if (address.toLowerCase() === 'postmaster') {
          if (options.postmaster === undefined) return { kind: 'unknown' };
          const resolved = await resolveAddress(options.postmaster, true);
          return resolved.kind === 'not-local' ? { kind: 'unknown' } : resolved;
        }
        return await resolveAddress(address, false);
      } catch (error) {
        if (error instanceof DirectoryUnavailableError) throw error;
        if (error instanceof KeyStoreUnavailableError)
          throw new DirectoryUnavailableError(error.message);
        // An address the key store refuses to parse is no user of ours.
        if (error instanceof KeyStoreArgumentError) return { kind: 'unknown' };
        throw new DirectoryUnavailableError((error as Error).message);
      }
    },
  };
}
