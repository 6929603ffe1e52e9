/**
 * What the bridge's state journal (state-journal.ts) holds: changes to the cached
 * mailboxes as small entries, read back into the mailboxes of cache.ts, and the tracker
 * that finds which entries a save must write (README.md, "Cache at rest").
 *
 *   ['box', name, header]   a mailbox's settings (created if new)
 *   ['clear', name]         its messages gone (a new UIDVALIDITY)
 *   ['drop', name]          the mailbox gone
 *   ['m', name, uid, flags, internalDate, size, modseq, kind]   a message, new or changed
 *   ['x', name, uid]        a message expunged
 *
 * The tracker finds changed messages without a hook at every change, from the CONDSTORE
 * rule the local view keeps (local-mailbox.ts): every change to a message, and every
 * expunge, raises the mailbox's HIGHESTMODSEQ, and a changed message gets the new value.
 * So a mailbox whose HIGHESTMODSEQ and message array did not move costs nothing, and one
 * that did costs a walk over its messages (integer compares) plus one entry per message
 * changed; the whole state is written only by compaction.
 */
import type { SpecialUse } from '../store/backend.js';
import type { CachedKind, CachedMailbox, CachedMessage } from './cache.js';
import { BridgeError } from './errors.js';

type Header = Omit<CachedMailbox, 'name' | 'messages'>;

const KINDS = new Set<CachedKind>(['decrypted', 'not-encrypted', 'placeholder']);
const MAX_UID = 0xffffffff;
/** Distinct flag lists shared between messages; beyond this many, lists are not shared. */
const MAX_INTERNED = 4096;

const interned = new Map<string, string[]>();

/**
 * One frozen array per distinct flag list: most messages have `[]` or `['\Seen']`, and a
 * 50,000-message mailbox would otherwise hold 50,000 copies. Frozen, so an in-place change
 * throws instead of changing every message that shares it (flags are replaced, never
 * edited: local-mailbox.ts).
 */
export function internFlags(flags: string[]): string[] {
  const key = flags.join('\n');
  const known = interned.get(key);
  if (known !== undefined) return known;
  if (interned.size >= MAX_INTERNED) return flags;
  const shared = Object.freeze([...flags]) as string[];
  interned.set(key, shared);
  return shared;
}

function headerOf(mailbox: CachedMailbox): Header {
  return {
    path: mailbox.path,
    ...(mailbox.specialUse !== undefined ? { specialUse: mailbox.specialUse } : {}),
    subscribed: mailbox.subscribed,
    uidValidity: mailbox.uidValidity,
    uidNext: mailbox.uidNext,
    highestModseq: mailbox.highestModseq,
    ...(mailbox.upstreamModseq !== undefined ? { upstreamModseq: mailbox.upstreamModseq } : {}),
  };
}

function messageOp(name: string, m: CachedMessage): unknown[] {
  return ['m', name, m.uid, m.flags, m.internalDate, m.size, m.modseq, m.kind];
}

// Reading entries back.

function bad(what: string): never {
  throw new BridgeError('corrupt-cache', `the bridge state has ${what}`);
}

const isCount = (v: unknown, max = Number.MAX_SAFE_INTEGER): v is number =>
  typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;

function readHeader(value: unknown): Header {
  const h = value as Partial<Header> | null;
  if (
    typeof h !== 'object' ||
    h === null ||
    typeof h.path !== 'string' ||
    typeof h.subscribed !== 'boolean' ||
    !isCount(h.uidValidity, MAX_UID) ||
    !isCount(h.uidNext) ||
    !isCount(h.highestModseq) ||
    (h.upstreamModseq !== undefined && !isCount(h.upstreamModseq)) ||
    (h.specialUse !== undefined && typeof h.specialUse !== 'string')
  )
    bad('a damaged mailbox entry');
  return {
    path: h.path,
    ...(h.specialUse !== undefined ? { specialUse: h.specialUse as SpecialUse } : {}),
    subscribed: h.subscribed,
    uidValidity: h.uidValidity,
    uidNext: h.uidNext,
    highestModseq: h.highestModseq,
    ...(h.upstreamModseq !== undefined ? { upstreamModseq: h.upstreamModseq } : {}),
  };
}

function readMessage(op: unknown[]): CachedMessage {
  const [, , uid, flags, internalDate, size, modseq, kind] = op;
  if (
    op.length !== 8 ||
    !isCount(uid, MAX_UID) ||
    uid === 0 ||
    !Array.isArray(flags) ||
    !flags.every((f) => typeof f === 'string') ||
    typeof internalDate !== 'number' ||
    !Number.isFinite(internalDate) ||
    !isCount(size) ||
    !isCount(modseq) ||
    !KINDS.has(kind as CachedKind)
  )
    bad('a damaged message entry');
  return {
    uid,
    flags: internFlags(flags as string[]),
    internalDate,
    size,
    modseq,
    kind: kind as CachedKind,
  };
}

/** The mailboxes being read back from a journal, entry by entry. */
export class StateBuilder {
  private readonly boxes = new Map<
    string,
    { header: Header; messages: Map<number, CachedMessage> }
  >();

  apply(ops: unknown[]): void {
    for (const op of ops) {
      if (!Array.isArray(op) || typeof op[1] !== 'string') bad('an entry of unknown form');
      const [type, name] = op as [unknown, string];
      if (type === 'box') {
        const header = readHeader(op[2]);
        const box = this.boxes.get(name);
        if (box === undefined) this.boxes.set(name, { header, messages: new Map() });
        else box.header = header;
        continue;
      }
      if (type === 'drop') {
        this.boxes.delete(name);
        continue;
      }
      const box = this.boxes.get(name) ?? bad('an entry for an unknown mailbox');
      if (type === 'clear') box.messages.clear();
      else if (type === 'm') {
        const message = readMessage(op);
        box.messages.set(message.uid, message);
      } else if (type === 'x' && isCount(op[2], MAX_UID)) box.messages.delete(op[2]);
      else bad('an entry of unknown form');
    }
  }

  /** The mailboxes, in the order they were first made, each with its messages by UID. */
  mailboxes(): CachedMailbox[] {
    return [...this.boxes].map(([name, { header, messages }]) => ({
      name,
      ...header,
      messages: [...messages.values()].sort((a, b) => a.uid - b.uid),
    }));
  }
}

/** What the tracker knows is on disk for one mailbox. */
interface Saved {
  mailbox: CachedMailbox;
  header: string;
  uidValidity: number;
  highestModseq: number;
  /** The array of messages saved, and its length: a new array (expunge) or length means a walk. */
  array: CachedMessage[];
  count: number;
  /** Saved UIDs, ascending. */
  uids: Uint32Array;
}

function sortedUids(messages: CachedMessage[]): Uint32Array {
  const uids = new Uint32Array(messages.length);
  let sorted = true;
  for (let i = 0; i < messages.length; i++) {
    uids[i] = messages[i]!.uid;
    if (i > 0 && uids[i]! <= uids[i - 1]!) sorted = false;
  }
  return sorted ? uids : uids.sort();
}

/** The entries of one save, and what to remember once they are on disk. */
export interface Changes {
  ops: unknown[];
  commit(): void;
}

export class StateTracker {
  private saved = new Map<string, Saved>();

  private savedOf(mailbox: CachedMailbox, header: string, uids: Uint32Array): Saved {
    return {
      mailbox,
      header,
      uidValidity: mailbox.uidValidity,
      highestModseq: mailbox.highestModseq,
      array: mailbox.messages,
      count: mailbox.messages.length,
      uids,
    };
  }

  /**
   * The entries of the whole state (a compaction), as every mailbox's settings and
   * messages; without `withOps`, only what to remember (the state just read back).
   */
  all(mailboxes: CachedMailbox[], withOps = true): Changes {
    const ops: unknown[] = [];
    const next = new Map<string, Saved>();
    for (const mailbox of mailboxes) {
      if (next.has(mailbox.name)) continue;
      const header = headerOf(mailbox);
      if (withOps) {
        ops.push(['box', mailbox.name, header]);
        for (const message of mailbox.messages) {
          message.flags = internFlags(message.flags);
          ops.push(messageOp(mailbox.name, message));
        }
      }
      next.set(
        mailbox.name,
        this.savedOf(mailbox, JSON.stringify(header), sortedUids(mailbox.messages)),
      );
    }
    return { ops, commit: () => (this.saved = next) };
  }

  /** The entries that bring what was saved to `mailboxes`; none when nothing changed. */
  changes(mailboxes: CachedMailbox[]): Changes {
    const ops: unknown[] = [];
    const updates: Saved[] = [];
    const present = new Set<string>();
    for (const mailbox of mailboxes) {
      if (present.has(mailbox.name)) continue;
      present.add(mailbox.name);
      const saved = this.saved.get(mailbox.name);
      const header = headerOf(mailbox);
      const headerJson = JSON.stringify(header);
      const fresh =
        saved === undefined ||
        saved.mailbox !== mailbox ||
        saved.uidValidity !== mailbox.uidValidity ||
        mailbox.highestModseq < saved.highestModseq;
      if (fresh) {
        ops.push(['box', mailbox.name, header]);
        if (saved !== undefined) ops.push(['clear', mailbox.name]);
        for (const message of mailbox.messages) {
          message.flags = internFlags(message.flags);
          ops.push(messageOp(mailbox.name, message));
        }
        updates.push(this.savedOf(mailbox, headerJson, sortedUids(mailbox.messages)));
        continue;
      }
      const moved =
        mailbox.highestModseq !== saved.highestModseq ||
        mailbox.messages !== saved.array ||
        mailbox.messages.length !== saved.count;
      if (!moved) {
        if (headerJson !== saved.header) {
          ops.push(['box', mailbox.name, header]);
          updates.push({ ...saved, header: headerJson });
        }
        continue;
      }
      ops.push(['box', mailbox.name, header]);
      const uids = sortedUids(mailbox.messages);
      // One merge of the two ascending lists: saved UIDs no longer present are expunged,
      // present UIDs not saved are new.
      const added = new Set<number>();
      let i = 0;
      let j = 0;
      while (i < uids.length || j < saved.uids.length) {
        const now = i < uids.length ? uids[i]! : Infinity;
        const before = j < saved.uids.length ? saved.uids[j]! : Infinity;
        if (now === before) {
          i++;
          j++;
        } else if (now < before) {
          added.add(now);
          i++;
        } else {
          ops.push(['x', mailbox.name, before]);
          j++;
        }
      }
      // New or changed: new, or a mod-sequence above the one saved.
      for (const message of mailbox.messages) {
        if (message.modseq <= saved.highestModseq && !added.has(message.uid)) continue;
        message.flags = internFlags(message.flags);
        ops.push(messageOp(mailbox.name, message));
      }
      updates.push(this.savedOf(mailbox, headerJson, uids));
    }
    const dropped = [...this.saved.keys()].filter((name) => !present.has(name));
    for (const name of dropped) ops.push(['drop', name]);
    return {
      ops,
      commit: () => {
        for (const name of dropped) this.saved.delete(name);
        for (const update of updates) this.saved.set(update.mailbox.name, update);
      },
    };
  }
}
