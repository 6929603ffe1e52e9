import Database from 'better-sqlite3';
import type { MessageStructure } from '../mime/types.js';

/**
 * The per-user message index: one SQLite file `<root>/<user>/recrypt-index.sqlite`
 * (better-sqlite3) holding, per message, its size, internal date and parsed MIME
 * structure, so listing and FETCH ENVELOPE/BODYSTRUCTURE read no message file.
 *
 * Why SQLite over a hand-kept cache file: updates and deletes by (mailbox, uid) are
 * transactional without writing an append-log/compaction scheme, and it is one file per
 * user instead of one per mailbox. Rows are keyed by the mailbox GUID from the uidlist
 * header, so they follow a RENAME. The index is a cache: the Maildir files and
 * dovecot-uidlist are the truth, and a row whose `base` does not match the file is
 * re-parsed. That is why `synchronous=NORMAL` (WAL) is enough: a row lost to a power
 * failure costs one re-parse, never a message. Dovecot ignores the file.
 */

export interface IndexRow {
  uid: number;
  base: string;
  size: number;
  internalDate: number;
}

export class UserIndex {
  private readonly db: Database.Database;
  private readonly stmts;

  constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(`CREATE TABLE IF NOT EXISTS messages (
      mailbox TEXT NOT NULL,
      uid INTEGER NOT NULL,
      base TEXT NOT NULL,
      size INTEGER NOT NULL,
      internal_date INTEGER NOT NULL,
      structure TEXT NOT NULL,
      PRIMARY KEY (mailbox, uid)
    ) WITHOUT ROWID`);
    this.stmts = {
      list: this.db.prepare<
        [string],
        { uid: number; base: string; size: number; internal_date: number }
      >('SELECT uid, base, size, internal_date FROM messages WHERE mailbox = ? ORDER BY uid'),
      structure: this.db.prepare<[string, number], { base: string; structure: string }>(
        'SELECT base, structure FROM messages WHERE mailbox = ? AND uid = ?',
      ),
      put: this.db.prepare(
        'INSERT OR REPLACE INTO messages (mailbox, uid, base, size, internal_date, structure) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      remove: this.db.prepare('DELETE FROM messages WHERE mailbox = ? AND uid = ?'),
      dropMailbox: this.db.prepare('DELETE FROM messages WHERE mailbox = ?'),
    };
  }

  rows(mailbox: string): IndexRow[] {
    return this.stmts.list.all(mailbox).map((r) => ({
      uid: r.uid,
      base: r.base,
      size: r.size,
      internalDate: r.internal_date,
    }));
  }

  /** The cached structure when the row still describes file `base`. */
  structure(mailbox: string, uid: number, base: string): MessageStructure | null {
    const row = this.stmts.structure.get(mailbox, uid);
    if (row === undefined || row.base !== base) return null;
    return JSON.parse(row.structure) as MessageStructure;
  }

  put(mailbox: string, rows: Array<IndexRow & { structure: MessageStructure }>): void {
    this.db.transaction(() => {
      for (const r of rows) {
        this.stmts.put.run(
          mailbox,
          r.uid,
          r.base,
          r.size,
          r.internalDate,
          JSON.stringify(r.structure),
        );
      }
    })();
  }

  remove(mailbox: string, uids: number[]): void {
    this.db.transaction(() => {
      for (const uid of uids) this.stmts.remove.run(mailbox, uid);
    })();
  }

  dropMailbox(mailbox: string): void {
    this.stmts.dropMailbox.run(mailbox);
  }

  close(): void {
    this.db.close();
  }
}
