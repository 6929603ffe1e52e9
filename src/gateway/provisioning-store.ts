import type { KeyStore } from '../keystore/index.js';
import type { MailStore } from '../store/backend.js';

/**
 * The embedded store knows only the users whose Maildir exists; the key store knows who
 * has an account, and which addresses are lists (whose mailbox is the list's archive).
 * This wrapper makes the Maildir (INBOX, Sent, Drafts, …) on first delivery or login, so
 * that `recrypt user add` or `recrypt list create` is all anyone does.
 * Dovecot deployments provision through Dovecot's own userdb instead.
 */
export function provisioningStore(store: MailStore, keyStore: KeyStore): MailStore {
  const ensure = async (user: string): Promise<boolean> => {
    if (await store.userExists(user)) return true;
    if ((await keyStore.getUser(user)) === null && (await keyStore.getList(user)) === null) {
      return false;
    }
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
