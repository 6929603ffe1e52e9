/**
 * The read-only rule of a list archive session. Every member reads the same
 * store mailbox, so no member may change it: the client relay sends SELECT as EXAMINE
 * (the store answers [READ-ONLY] and sets no \Seen) and refuses every command outside a
 * read-only allow-list. The relay sends a refused command upstream as NOOP (so replies
 * stay in order); `responseLine` turns that NOOP's tagged reply into `NO [NOPERM]`
 * (RFC 5530). An allow-list, like capabilities.ts: a write extension not thought of
 * here (REPLACE, SETMETADATA, …) is refused, not passed.
 */
import type { ReadOnlyPolicy } from './client-relay.js';

export const ARCHIVE_READ_ONLY_TEXT = 'The list archive is read-only';

/** Commands (after UID) that read and change nothing a member shares with the others. */
const READ_COMMANDS = new Set([
  // Not a command: the line that ends IDLE, or a malformed one (upstream judges it).
  '',
  'CAPABILITY',
  'NOOP',
  'LOGOUT',
  'ID',
  'ENABLE',
  'IDLE',
  'NAMESPACE',
  'LIST',
  'LSUB',
  'XLIST',
  'STATUS',
  'SELECT',
  'EXAMINE',
  'CLOSE',
  'UNSELECT',
  'CHECK',
  'FETCH',
  'SEARCH',
  'SORT',
  'THREAD',
  'GETQUOTA',
  'GETQUOTAROOT',
  'GETACL',
  'MYRIGHTS',
  'LISTRIGHTS',
  'GETMETADATA',
]);

const TAGGED_STATUS = /^(\S+) (?:OK|NO|BAD)\b/i;

export class ArchiveReadOnly implements ReadOnlyPolicy {
  /** Tags of refused commands whose tagged reply has not come back yet (count per tag). */
  private readonly refused = new Map<string, number>();

  refuses(tag: string, name: string): boolean {
    if (READ_COMMANDS.has(name)) return false;
    this.refused.set(tag, (this.refused.get(tag) ?? 0) + 1);
    return true;
  }

  /** Rewrites upstream's tagged reply to a refused command; other lines pass unchanged. */
  responseLine(line: string): string {
    if (this.refused.size === 0) return line;
    const tag = TAGGED_STATUS.exec(line)?.[1];
    const pending = tag === undefined ? undefined : this.refused.get(tag);
    if (tag === undefined || pending === undefined) return line;
    if (pending > 1) this.refused.set(tag, pending - 1);
    else this.refused.delete(tag);
    return `${tag} NO [NOPERM] ${ARCHIVE_READ_ONLY_TEXT}`;
  }
}
