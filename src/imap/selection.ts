/**
 * Which mailbox the client has selected, and its UIDVALIDITY: plan-cache keys and side
 * fetches need both. Fed by the client relay (SELECT/EXAMINE/CLOSE/UNSELECT and their
 * tags) and by the response rewriter (`[UIDVALIDITY n]` and tagged completions).
 */
import type { Selection } from './body-literal.js';

export class SelectionTracker {
  private selected: Selection | null = null;
  private readonly pending = new Map<string, { mailbox: string | null; uidValidity?: number }>();

  current(): Selection | null {
    return this.selected;
  }

  /** The client sent `tag SELECT|EXAMINE mailbox` (mailbox decoded) or `tag CLOSE|UNSELECT` (null). */
  commandSent(tag: string, mailbox: string | null): void {
    this.pending.set(tag, { mailbox });
  }

  /** A status line from upstream (without CRLF). */
  responseLine(line: string): void {
    if (this.pending.size === 0) return;
    const validity = /^\* OK \[UIDVALIDITY (\d{1,10})\]/i.exec(line);
    if (validity !== null) {
      for (const entry of this.pending.values())
        if (entry.mailbox !== null) entry.uidValidity = Number(validity[1]);
      return;
    }
    const tagged = /^(\S+) (OK|NO|BAD)\b/i.exec(line);
    if (tagged === null) return;
    const entry = this.pending.get(tagged[1]!);
    if (entry === undefined) return;
    this.pending.delete(tagged[1]!);
    const ok = tagged[2]!.toUpperCase() === 'OK';
    if (entry.mailbox === null) {
      if (ok) this.selected = null;
    } else {
      // RFC 3501 §6.3.1: a failed SELECT leaves no mailbox selected.
      this.selected =
        ok && entry.uidValidity !== undefined
          ? { mailbox: entry.mailbox, uidValidity: entry.uidValidity }
          : null;
    }
  }
}
