/**
 * The gateway's folder list brought into the local view (README.md, "UIDs"): a mailbox
 * new on the gateway is added empty (its messages come with its next sync), one gone is
 * removed with its cached files after its sessions end, and a new name that appears
 * while another vanishes is a rename when one STATUS shows the vanished one's
 * UIDVALIDITY (rename.ts: nothing fetched again). A list without INBOX is refused as
 * broken, changing nothing. The caller (sync.ts) runs one at a time.
 */
import type { SpecialUse } from '../store/backend.js';
import type { BridgeCache, CachedMailbox } from './cache.js';
import { BridgeError } from './errors.js';
import type { LocalMailbox } from './local-mailbox.js';
import { moveCachedMailbox } from './rename.js';
import type { Upstream } from './upstream.js';

const SPECIAL_USES = new Set(['\\Sent', '\\Drafts', '\\Trash', '\\Junk', '\\Archive']);

/** The parts of the sync that a folder list changes. */
export interface FolderView {
  readonly cache: BridgeCache;
  readonly upstream: Upstream;
  /** Local name → mailbox; changed in place. */
  readonly mailboxes: Map<string, LocalMailbox>;
  localOf(state: CachedMailbox): LocalMailbox;
}

export interface FolderListResult {
  /** The gateway's hierarchy delimiter ('/' when it names none). */
  delimiter: string;
  /** True when a mailbox was added, renamed or removed. */
  changed: boolean;
}

/** `delimiter`: the one learnt before, kept when the gateway names none. */
export async function syncFolderList(
  view: FolderView,
  delimiter: string,
): Promise<FolderListResult> {
  const { cache, mailboxes } = view;
  const listed = (await view.upstream.listMailboxes()).filter((m) => !m.flags.has('\\Noselect'));
  // Every account has an INBOX (RFC 9051 §5.1): a list without it is a broken answer, not
  // every folder deleted; taken as one, it would end every session and empty the cache.
  if (!listed.some((m) => m.path.toUpperCase() === 'INBOX'))
    throw new BridgeError(
      'upstream',
      "the gateway's folder list has no INBOX: folders kept as they are",
    );
  const seen = new Set<string>();
  const added: Array<{ name: string; entry: (typeof listed)[number] }> = [];
  let changed = false;
  for (const entry of listed) {
    delimiter = entry.delimiter || '/';
    const name =
      entry.path.toUpperCase() === 'INBOX' ? 'INBOX' : entry.path.split(delimiter).join('/');
    seen.add(name);
    const known = mailboxes.get(name);
    if (known !== undefined) {
      known.state.subscribed = entry.subscribed;
      continue;
    }
    added.push({ name, entry });
  }
  const gone = [...mailboxes.values()].filter((m) => !seen.has(m.name));
  for (const { name, entry } of added) {
    const renamed =
      gone.length > 0 ? await renamedFrom(view.upstream, gone, entry.path) : undefined;
    if (renamed !== undefined) {
      // Sessions with the old name selected end: that name is gone (as for a deletion).
      renamed.endSessions(`${renamed.name} was renamed to ${name} on the gateway`);
      const oldName = renamed.name;
      await moveCachedMailbox(cache, renamed.state, name, entry.path);
      renamed.state.subscribed = entry.subscribed;
      mailboxes.delete(oldName);
      mailboxes.set(name, renamed);
      gone.splice(gone.indexOf(renamed), 1);
      changed = true;
      continue;
    }
    const state: CachedMailbox = {
      name,
      path: entry.path,
      ...(entry.specialUse !== undefined && SPECIAL_USES.has(entry.specialUse)
        ? { specialUse: entry.specialUse as SpecialUse }
        : {}),
      subscribed: entry.subscribed,
      uidValidity: 0,
      uidNext: 1,
      highestModseq: 1,
      messages: [],
    };
    cache.mailboxes.push(state);
    mailboxes.set(name, view.localOf(state));
    changed = true;
  }
  for (const mailbox of gone) {
    const name = mailbox.name;
    // Sessions with it selected end rather than see it emptied (README.md, "Sync").
    mailbox.endSessions(`${name} was deleted on the gateway`);
    mailbox.remove(
      mailbox.state.messages.map((m) => m.uid),
      null,
    );
    cache.removeMailboxFiles(name);
    mailboxes.delete(name);
    cache.mailboxes.splice(cache.mailboxes.indexOf(mailbox.state), 1);
    changed = true;
  }
  cache.saveSoon();
  return { delimiter, changed };
}

/** The vanished mailbox whose UIDVALIDITY the new `path` has (one STATUS), if any. */
async function renamedFrom(
  upstream: Upstream,
  gone: LocalMailbox[],
  path: string,
): Promise<LocalMailbox | undefined> {
  const status = await upstream
    .run((client) => client.status(path, { uidValidity: true }))
    .catch(() => false as const);
  const validity = status === false ? 0 : Number(status.uidValidity ?? 0);
  if (validity === 0) return undefined;
  return gone.find((m) => m.state.uidValidity === validity);
}
