/**
 * What the at-rest checks cost (docs/threat-model.md, "At rest"):
 * * the tightening pass `recrypt start` runs over the data directory, on a tree of
 *   20,000 message files, when everything is already tight and when every entry is
 *   loose, against a bare readdir + lstat walk of the same tree (the floor);
 * * the key-store page check behind /readyz (`PRAGMA quick_check` in a worker on a fresh
 *   connection) on a 64 MB SQLite file, against `SELECT 1` on an open connection.
 */
import Database from 'better-sqlite3';
import { chmodSync, lstatSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rmSync, mkdtempSync } from 'node:fs';
import { tightenTree } from '../src/gateway/data-dir.js';
import { SqliteIntegrityCheck } from '../src/keystore/sqlite/integrity-check.js';

const USERS = 100;
const MESSAGES = 200;

function build(root: string, mode: number, dirMode: number): void {
  for (let u = 0; u < USERS; u++) {
    const cur = join(root, 'mail', `user${u}@example.org`, 'Maildir', 'cur');
    mkdirSync(cur, { recursive: true });
    for (let m = 0; m < MESSAGES; m++) {
      const file = join(cur, `1700000000.M${m}P1.host,S=10:2,S`);
      writeFileSync(file, 'x', { mode });
      chmodSync(file, mode);
    }
    chmodSync(cur, dirMode);
  }
}

function bareWalk(dir: string): number {
  let n = 0;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    n++;
    if (lstatSync(path).isDirectory()) n += bareWalk(path);
  }
  return n;
}

function ms(fn: () => unknown): number {
  const start = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

async function msAsync(fn: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'recrypt-bench-at-rest-'));
  try {
    const root = join(dir, 'data');
    build(root, 0o600, 0o700);
    tightenTree(root);
    const files = USERS * MESSAGES;
    const walk = ms(() => bareWalk(root));
    const tight = ms(() => tightenTree(root));
    rmSync(root, { recursive: true });
    build(root, 0o644, 0o755);
    let changed = 0;
    const loose = ms(() => (changed = tightenTree(root).changed));
    console.log(`tightening pass over ${files} message files (${USERS} users)`);
    console.log(`  bare readdir+lstat walk        ${walk.toFixed(0)} ms`);
    console.log(`  tightenTree, already tight     ${tight.toFixed(0)} ms`);
    console.log(`  tightenTree, all loose         ${loose.toFixed(0)} ms (${changed} changed)`);

    const file = join(dir, 'keystore.sqlite');
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE users (address TEXT PRIMARY KEY, cert BLOB, data TEXT)');
    db.exec(
      'CREATE TABLE devices (address TEXT, id TEXT, rk BLOB, cert BLOB, PRIMARY KEY (address, id))',
    );
    const user = db.prepare('INSERT INTO users VALUES (?, ?, ?)');
    const device = db.prepare('INSERT INTO devices VALUES (?, ?, ?, ?)');
    db.transaction(() => {
      for (let i = 0; i < 20_000; i++) {
        user.run(`u${i}@example.org`, Buffer.alloc(600, i), 'x'.repeat(200));
        for (let j = 0; j < 3; j++)
          device.run(`u${i}@example.org`, `d${j}`, Buffer.alloc(48, j), Buffer.alloc(600, j));
      }
    })();
    db.pragma('wal_checkpoint(TRUNCATE)');
    const size = lstatSync(file).size;
    const select = ms(() => db.prepare('SELECT 1').get());
    const rounds: number[] = [];
    for (let i = 0; i < 3; i++) {
      const check = new SqliteIntegrityCheck(file, { reuseMs: 0 });
      rounds.push(await msAsync(() => check.run()));
    }
    db.close();
    console.log(`key-store check on ${(size / 1e6).toFixed(0)} MB (20,000 users, 60,000 devices)`);
    console.log(`  SELECT 1 (before)              ${select.toFixed(2)} ms`);
    console.log(
      `  quick_check in a worker        ${Math.min(...rounds).toFixed(0)} ms best of 3 (off the event loop)`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
