import Database from 'better-sqlite3';
import { closeSync, openSync, unlinkSync } from 'node:fs';
import type { SearchField, SearchFields } from '../mime/search-fields.js';
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
 *
 * A second table keeps, per message, what SEARCH compares of its header (see
 * ../mime/search-fields.ts): written with the message's row when the store has the
 * bytes at hand (APPEND, delivery, a rescan's parse, COPY/MOVE from the source's row),
 * removed with it, and filled for any message that lacks it at the first SEARCH that
 * needs it. Keyed and checked by base name like the structures.
 *
 * For the same reason a damaged file (torn, overwritten, another version's layout) is
 * deleted and started afresh, at open or at the first query that meets the damage: the
 * UIDs live in dovecot-uidlist, so a rebuild re-parses messages and loses nothing.
 */

/** Bumped when the table layout changes; any other version is rebuilt. */
const INDEX_VERSION = 1;

/** SQLite's answers for a file that is not (or no longer) a sound index. */
const DAMAGE = /^SQLITE_(CORRUPT|NOTADB)/;

function isDamage(error: unknown): boolean {
  return error instanceof IndexDamage || DAMAGE.test((error as { code?: string }).code ?? '');
}

class IndexDamage extends Error {}

export interface IndexRow {
  uid: number;
  base: string;
  size: number;
  internalDate: number;
}

type Statements = ReturnType<typeof prepare>;

export class UserIndex {
  private db!: Database.Database;
  private stmts!: Statements;
  private fieldQueries = new Map<string, Database.Statement<[string, number, number], unknown[]>>();

  constructor(private readonly path: string) {
    try {
      this.open();
    } catch (error) {
      // At open even a plain SQLITE_ERROR ("no such column": a table of another
      // layout) means the file is not ours to trust.
      if (!isDamage(error) && (error as { code?: string }).code !== 'SQLITE_ERROR') throw error;
      this.rebuild();
    }
  }

  private open(): void {
    // Created 0600 here rather than by SQLite (0644 less the umask): it holds the
    // structure of every message, subjects and addresses included.
    closeSync(openSync(this.path, 'a', 0o600));
    this.db = new Database(this.path);
    try {
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      const version = this.db.pragma('user_version', { simple: true }) as number;
      if (version !== 0 && version !== INDEX_VERSION)
        throw new IndexDamage(`index version ${version}`);
      this.stmts = prepare(this.db);
      this.fieldQueries = new Map();
      if (version === 0) this.db.pragma(`user_version = ${INDEX_VERSION}`);
    } catch (error) {
      this.db.close();
      throw error;
    }
  }

  /** Deletes the file (and its WAL) and starts an empty index. */
  private rebuild(): void {
    try {
      this.db?.close();
    } catch {
      // already closed, or too damaged to close cleanly: the file goes anyway
    }
    for (const suffix of ['', '-wal', '-shm', '-journal']) {
      try {
        unlinkSync(this.path + suffix);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
    }
    this.open();
  }

  /** Runs `fn`; on damage rebuilds once and runs it again on the empty index. */
  private guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (error) {
      if (!isDamage(error)) throw error;
      this.rebuild();
      return fn();
    }
  }

  rows(mailbox: string): IndexRow[] {
    return this.guard(() =>
      this.stmts.list.all(mailbox).map((r) => ({
        uid: r.uid,
        base: r.base,
        size: r.size,
        internalDate: r.internal_date,
      })),
    );
  }

  /** The cached structure when the row still describes file `base`. */
  structure(mailbox: string, uid: number, base: string): MessageStructure | null {
    const row = this.guard(() => this.stmts.structure.get(mailbox, uid));
    if (row === undefined || row.base !== base) return null;
    try {
      return JSON.parse(row.structure) as MessageStructure;
    } catch {
      return null; // a damaged row: the caller re-parses the message and rewrites it
    }
  }

  /**
   * The cached structures of `uids` (ascending) in one query over their UID range, for
   * SEARCH, SORT and THREAD over many messages: one statement step per row instead of a
   * query per message (when the UIDs are dense in their range). Rows whose base name differs from `bases` (a changed file) or that
   * do not parse are left out, as `structure` returns null for them.
   */
  structures(
    mailbox: string,
    uids: number[],
    bases: Map<number, string>,
  ): Map<number, MessageStructure> {
    const out = new Map<number, MessageStructure>();
    if (uids.length === 0) return out;
    const first = uids[0] as number;
    const last = uids[uids.length - 1] as number;
    // a sparse set would scan rows nobody asked for: then one lookup per message
    const rows = this.guard(() =>
      last - first >= 4 * uids.length
        ? uids.flatMap((uid) => {
            const row = this.stmts.structure.get(mailbox, uid);
            return row === undefined ? [] : [{ uid, ...row }];
          })
        : this.stmts.range.all(mailbox, first, last),
    );
    for (const row of rows) {
      const base = bases.get(row.uid);
      if (base === undefined || base !== row.base) continue;
      try {
        out.set(row.uid, JSON.parse(row.structure) as MessageStructure);
      } catch {
        // a damaged row: the caller re-parses the message and rewrites it
      }
    }
    return out;
  }

  /**
   * The search fields of `uids` (ascending) whose row still describes the file in
   * `bases`, in one query over their UID range as `structures` does. Only the fields
   * named in `wanted` are read (the others are '' or null): each column read costs a
   * string per row, and a SEARCH of a whole mailbox reads every row.
   */
  searchFields(
    mailbox: string,
    uids: number[],
    bases: Map<number, string>,
    wanted: ReadonlyArray<SearchField>,
  ): Map<number, SearchFields> {
    const out = new Map<number, SearchFields>();
    if (uids.length === 0) return out;
    const first = uids[0] as number;
    const last = uids[uids.length - 1] as number;
    const fields = SEARCH_FIELDS.filter((f) => wanted.includes(f));
    const query = this.fieldsQuery(fields);
    // a sparse set would scan rows nobody asked for: then one lookup per message
    const rows = this.guard(() =>
      last - first >= 4 * uids.length
        ? uids.flatMap((uid) => query.all(mailbox, uid, uid))
        : query.all(mailbox, first, last),
    );
    for (const row of rows) {
      const uid = row[0] as number;
      if (bases.get(uid) !== row[1]) continue;
      const f: SearchFields = { ...EMPTY_FIELDS };
      fields.forEach((name, i) => ((f as unknown as Record<string, unknown>)[name] = row[i + 2]));
      out.set(uid, f);
    }
    return out;
  }

  /** A raw-row query of (uid, base, …fields) over a UID range, prepared once per column set. */
  private fieldsQuery(
    fields: SearchField[],
  ): Database.Statement<[string, number, number], unknown[]> {
    const key = fields.join(',');
    let query = this.fieldQueries.get(key);
    if (query === undefined) {
      const columns = ['uid', 'base', ...fields.map((f) => FIELD_COLUMNS[f])].join(', ');
      query = this.db
        .prepare<[string, number, number], unknown[]>(
          `SELECT ${columns} FROM search_fields WHERE mailbox = ? AND uid BETWEEN ? AND ?`,
        )
        .raw(true);
      this.fieldQueries.set(key, query);
    }
    return query;
  }

  /** The search fields of one message when its row still describes file `base`. */
  searchFieldsOf(mailbox: string, uid: number, base: string): SearchFields | null {
    return (
      this.searchFields(mailbox, [uid], new Map([[uid, base]]), SEARCH_FIELDS).get(uid) ?? null
    );
  }

  putSearchFields(
    mailbox: string,
    rows: Array<{ uid: number; base: string; fields: SearchFields }>,
  ): void {
    this.guard(() =>
      this.db.transaction(() => {
        for (const r of rows) this.putFields(mailbox, r.uid, r.base, r.fields);
      })(),
    );
  }

  private putFields(mailbox: string, uid: number, base: string, f: SearchFields): void {
    this.stmts.putFields.run(
      mailbox,
      uid,
      base,
      f.from,
      f.to,
      f.cc,
      f.bcc,
      f.subject,
      f.sentDay,
      f.header,
    );
  }

  /** Stores the rows; a row with `fields` replaces its search fields too. */
  put(
    mailbox: string,
    rows: Array<IndexRow & { structure: MessageStructure; fields?: SearchFields | null }>,
  ): void {
    this.guard(() =>
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
          if (r.fields !== undefined && r.fields !== null)
            this.putFields(mailbox, r.uid, r.base, r.fields);
        }
      })(),
    );
  }

  remove(mailbox: string, uids: number[]): void {
    this.guard(() =>
      this.db.transaction(() => {
        for (const uid of uids) {
          this.stmts.remove.run(mailbox, uid);
          this.stmts.removeFields.run(mailbox, uid);
        }
      })(),
    );
  }

  dropMailbox(mailbox: string): void {
    this.guard(() =>
      this.db.transaction(() => {
        this.stmts.dropMailbox.run(mailbox);
        this.stmts.dropMailboxFields.run(mailbox);
      })(),
    );
  }

  close(): void {
    this.db.close();
  }
}

function prepare(db: Database.Database) {
  db.exec(`CREATE TABLE IF NOT EXISTS messages (
      mailbox TEXT NOT NULL,
      uid INTEGER NOT NULL,
      base TEXT NOT NULL,
      size INTEGER NOT NULL,
      internal_date INTEGER NOT NULL,
      structure TEXT NOT NULL,
      PRIMARY KEY (mailbox, uid)
    ) WITHOUT ROWID`);
  // SEARCH's fields (see ../mime/search-fields.ts); text columns are lower-cased
  db.exec(`CREATE TABLE IF NOT EXISTS search_fields (
      mailbox TEXT NOT NULL,
      uid INTEGER NOT NULL,
      base TEXT NOT NULL,
      from_lc TEXT NOT NULL,
      to_lc TEXT NOT NULL,
      cc_lc TEXT NOT NULL,
      bcc_lc TEXT NOT NULL,
      subject_lc TEXT NOT NULL,
      sent_day INTEGER,
      header_lc TEXT,
      PRIMARY KEY (mailbox, uid)
    ) WITHOUT ROWID`);
  return {
    list: db.prepare<[string], { uid: number; base: string; size: number; internal_date: number }>(
      'SELECT uid, base, size, internal_date FROM messages WHERE mailbox = ? ORDER BY uid',
    ),
    structure: db.prepare<[string, number], { base: string; structure: string }>(
      'SELECT base, structure FROM messages WHERE mailbox = ? AND uid = ?',
    ),
    range: db.prepare<[string, number, number], { uid: number; base: string; structure: string }>(
      'SELECT uid, base, structure FROM messages WHERE mailbox = ? AND uid BETWEEN ? AND ?',
    ),
    put: db.prepare(
      'INSERT OR REPLACE INTO messages (mailbox, uid, base, size, internal_date, structure) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    remove: db.prepare('DELETE FROM messages WHERE mailbox = ? AND uid = ?'),
    dropMailbox: db.prepare('DELETE FROM messages WHERE mailbox = ?'),
    putFields: db.prepare(
      `INSERT OR REPLACE INTO search_fields (mailbox, uid, base, from_lc, to_lc, cc_lc, bcc_lc, subject_lc, sent_day, header_lc)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    removeFields: db.prepare('DELETE FROM search_fields WHERE mailbox = ? AND uid = ?'),
    dropMailboxFields: db.prepare('DELETE FROM search_fields WHERE mailbox = ?'),
  };
}

/** Every search field, in column order. */
const SEARCH_FIELDS: readonly SearchField[] = [
  'from',
  'to',
  'cc',
  'bcc',
  'subject',
  'sentDay',
  'header',
];

const FIELD_COLUMNS: Record<SearchField, string> = {
  from: 'from_lc',
  to: 'to_lc',
  cc: 'cc_lc',
  bcc: 'bcc_lc',
  subject: 'subject_lc',
  sentDay: 'sent_day',
  header: 'header_lc',
};

const EMPTY_FIELDS: SearchFields = {
  from: '',
  to: '',
  cc: '',
  bcc: '',
  subject: '',
  sentDay: null,
  header: null,
};
