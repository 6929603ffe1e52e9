import type { KeyStore } from '../keystore/index.js';
import type { MailStore } from '../store/backend.js';

/**
 * The embedded store knows only the users whose Maildir exists; the key store knows who
 * has an account. This wrapper makes an account's Maildir (INBOX, Sent, Drafts, …) on
 * its first delivery or login, so that `recrypt user add` is all an operator does.
 * Dovecot deployments provision through Dovecot's own userdb instead.
 */
export function provisioningStore(store: MailStore, keyStore: KeyStore): MailStore {
  const ensure = async (user: string): Promise<boolean> => {
    if (await store.userExists(user)) return true;
    if ((await keyStore.getUser(user)) === null) return false;
    await store.createUser(user);
    return true;
  };
  return {
    userExists: ensure,
    createUser: (user) => store.createUser(user),
    deliver: async (user, message, options) => {
      await ensure(user);
      return store.deliver(user, message, options);
    },
    openUser: async (user) => {
      await ensure(user);
      return store.openUser(user);
    },
    close: () => store.close(),
  };
}
