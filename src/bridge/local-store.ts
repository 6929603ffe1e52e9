/**
 * The local view as the embedded store's IMAP server sees it: a `MailStore` with one user
 * (the device's address) whose mailboxes are the gateway's, decrypted (src/store/backend.ts
 * is the interface; src/store/imap/ serves it unchanged). Folder changes and APPENDs go to
 * the gateway first, then show locally.
 */
import {
  StoreError,
  type AppendOptions,
  type AppendResult,
  type MailboxHandle,
  type MailboxInfo,
  type MailboxStatus,
  type MailStore,
  type SpecialUse,
  type UserStore,
} from '../store/backend.js';
import type { AppendEncryption } from './append-encrypt.js';
import { BridgeError, onGateway } from './errors.js';
import { LocalMailboxHandle } from './local-handle.js';
import { normaliseFlags, type LocalMailbox } from './local-mailbox.js';
import type { Sync } from './sync.js';
import type { Upstream } from './upstream.js';

class BridgeUserStore implements UserStore {
  constructor(
    readonly user: string,
    private readonly sync: Sync,
    private readonly upstream: Upstream,
    private readonly encryption?: AppendEncryption,
  ) {}

  private mailbox(name: string): LocalMailbox {
    const key = name.toUpperCase() === 'INBOX' ? 'INBOX' : name;
    const mailbox = this.sync.mailboxes.get(key);
    if (mailbox === undefined) throw new StoreError('no-such-mailbox', `no mailbox ${name}`);
    return mailbox;
  }

  async listMailboxes(): Promise<MailboxInfo[]> {
    return [...this.sync.mailboxes.values()].map((m) => ({
      name: m.name,
      ...(m.state.specialUse !== undefined ? { specialUse: m.state.specialUse } : {}),
      subscribed: m.state.subscribed,
      noSelect: false,
    }));
  }

  async createMailbox(name: string, _specialUse?: SpecialUse): Promise<void> {
    if (this.sync.mailboxes.has(name)) throw new StoreError('mailbox-exists', `${name} exists`);
    const path = this.sync.pathOf(name);
    await onGateway(() => this.upstream.run((client) => client.mailboxCreate(path)));
    await onGateway(() => this.sync.syncFolders());
  }

  async deleteMailbox(name: string): Promise<void> {
    const mailbox = this.mailbox(name);
    await onGateway(() => this.upstream.run((client) => client.mailboxDelete(mailbox.state.path)));
    await onGateway(() => this.sync.syncFolders());
  }

  async renameMailbox(from: string, to: string): Promise<void> {
    const mailbox = this.mailbox(from);
    if (this.sync.mailboxes.has(to)) throw new StoreError('mailbox-exists', `${to} exists`);
    const target = this.sync.pathOf(to);
    await onGateway(() =>
      this.upstream.run((client) => client.mailboxRename(mailbox.state.path, target)),
    );
    // The sync recognises the rename by UIDVALIDITY and moves the cache (rename.ts).
    await onGateway(() => this.sync.syncFolders());
  }

  async setSubscribed(name: string, subscribed: boolean): Promise<void> {
    const mailbox = this.mailbox(name);
    await onGateway(() =>
      this.upstream.run((client) =>
        subscribed
          ? client.mailboxSubscribe(mailbox.state.path)
          : client.mailboxUnsubscribe(mailbox.state.path),
      ),
    );
    mailbox.state.subscribed = subscribed;
  }

  async subscriptions(): Promise<string[]> {
    return [...this.sync.mailboxes.values()].filter((m) => m.state.subscribed).map((m) => m.name);
  }

  async status(name: string): Promise<MailboxStatus> {
    const { state } = this.mailbox(name);
    return {
      messages: state.messages.length,
      recent: 0,
      unseen: state.messages.filter((m) => !m.flags.includes('\\Seen')).length,
      uidNext: state.uidNext,
      uidValidity: state.uidValidity,
      highestModseq: state.highestModseq,
    };
  }

  /**
   * APPEND (Sent, Drafts): encrypted here to the group (append-encrypt.ts), so the gateway
   * gets an envelope it stores as it is; then the plaintext is cached under the UID the
   * gateway gave it (APPENDUID), so the client sees it at once.
   */
  async append(
    name: string,
    message: Uint8Array,
    options: AppendOptions = {},
  ): Promise<AppendResult> {
    const mailbox = this.mailbox(name);
    const flags = normaliseFlags(options.flags ?? []);
    const date = options.internalDate ?? new Date();
    const upload =
      this.encryption !== undefined
        ? await this.encryption.encrypt(name, message)
        : Buffer.from(message);
    const appended = await onGateway(() =>
      this.upstream.run((client) => client.append(mailbox.state.path, upload, flags, date)),
    );
    if (appended === false)
      throw new StoreError('io-error', `the gateway refused APPEND to ${name}`);
    const uidValidity =
      appended.uidValidity !== undefined ? Number(appended.uidValidity) : undefined;
    if (appended.uid === undefined || uidValidity !== mailbox.state.uidValidity) {
      // No APPENDUID (or a new UIDVALIDITY): the sync fetches it back from the gateway.
      await onGateway(() => this.sync.syncMailbox(mailbox));
      return { uidValidity: mailbox.state.uidValidity, uid: mailbox.state.uidNext - 1 };
    }
    mailbox.add(
      {
        uid: appended.uid,
        flags: [...flags].sort(),
        internalDate: date.getTime(),
        size: message.length,
        modseq: 0,
        kind: 'decrypted',
      },
      message,
    );
    return { uidValidity, uid: appended.uid };
  }

  async openMailbox(name: string, options: { readOnly: boolean }): Promise<MailboxHandle> {
    const mailbox = this.mailbox(name);
    return new LocalMailboxHandle(mailbox, options.readOnly, (destination) =>
      this.mailbox(destination),
    );
  }
}

/** The `MailStore` the bridge's IMAP server runs over. */
export function createBridgeStore(
  user: string,
  sync: Sync,
  upstream: Upstream,
  encryption?: AppendEncryption,
): MailStore {
  return {
    userExists: async (name) => name.toLowerCase() === user.toLowerCase(),
    createUser: async () => {
      throw new BridgeError('invalid-argument', 'the bridge serves one user');
    },
    deliver: async () => {
      throw new StoreError('io-error', 'the bridge takes no deliveries');
    },
    openUser: async (name) => {
      if (name.toLowerCase() !== user.toLowerCase()) throw new StoreError('no-such-user', name);
      return new BridgeUserStore(user, sync, upstream, encryption);
    },
    close: async () => undefined,
  };
}
