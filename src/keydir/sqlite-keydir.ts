/**
 * The harvested key directory in SQLite (`<dataDir>/harvested-keys.sqlite`), for a
 * gateway on the SQLite key store: one table, one row per address and certificate.
 */
import Database from 'better-sqlite3';
import { decodeRecord, encodeRecord } from './codec.js';
import {
  byRecency,
  keptAfterAdding,
  type HarvestedCertificate,
  type KeyDirectory,
} from './types.js';

export class SqliteKeyDirectory implements KeyDirectory {
  readonly #db: Database.Database;
  readonly #now: () => number;

  constructor(path: string, now: () => number = Date.now) {
    this.#now = now;
    this.#db = new Database(path);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('busy_timeout = 5000');
    this.#db.exec(`
      CREATE TABLE IF NOT EXISTS harvested (
        address TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        domain TEXT NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (address, fingerprint)
      );
      CREATE INDEX IF NOT EXISTS harvested_domain ON harvested (domain, address);
    `);
  }

  #rows(sql: string, ...args: string[]): HarvestedCertificate[] {
    const rows = this.#db.prepare(sql).all(...args) as Array<{ record: string }>;
    return rows.flatMap((row) => decodeRecord(row.record) ?? []);
  }

  remember(certificate: HarvestedCertificate, maxPerAddress: number): Promise<void> {
    this.#db.transaction(() => {
      this.#db
        .prepare(
          'INSERT INTO harvested (address, fingerprint, domain, record) VALUES (?, ?, ?, ?) ' +
            'ON CONFLICT (address, fingerprint) DO UPDATE SET record = excluded.record',
        )
        .run(
          certificate.address,
          certificate.fingerprint,
          certificate.domain,
          encodeRecord(certificate),
        );
      const all = this.#rows('SELECT record FROM harvested WHERE address = ?', certificate.address);
      const remove = this.#db.prepare(
        'DELETE FROM harvested WHERE address = ? AND fingerprint = ?',
      );
      for (const dropped of keptAfterAdding(all, maxPerAddress, this.#now()).drop)
        remove.run(dropped.address, dropped.fingerprint);
    })();
    return Promise.resolve();
  }

  forAddress(address: string): Promise<HarvestedCertificate[]> {
    return Promise.resolve(
      this.#rows('SELECT record FROM harvested WHERE address = ?', address.toLowerCase()).sort(
        byRecency,
      ),
    );
  }

  list(domain?: string): Promise<HarvestedCertificate[]> {
    const rows =
      domain === undefined
        ? this.#rows('SELECT record FROM harvested')
        : this.#rows('SELECT record FROM harvested WHERE domain = ?', domain.toLowerCase());
    return Promise.resolve(
      rows.sort((a, b) => a.address.localeCompare(b.address) || byRecency(a, b)),
    );
  }

  remove(address: string, fingerprint?: string): Promise<number> {
    const result =
      fingerprint === undefined
        ? this.#db.prepare('DELETE FROM harvested WHERE address = ?').run(address.toLowerCase())
        : this.#db
            .prepare('DELETE FROM harvested WHERE address = ? AND fingerprint = ?')
            .run(address.toLowerCase(), fingerprint.toLowerCase());
    return Promise.resolve(result.changes);
  }

  close(): Promise<void> {
    this.#db.close();
    return Promise.resolve();
  }
}
