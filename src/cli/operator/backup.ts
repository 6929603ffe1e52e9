/**
 * `recrypt backup <dir>`: a consistent copy of a gateway's state while it runs
 * (docs/operations.md, "Backup and restore"). The SQLite key store goes through SQLite's
 * online backup API (one consistent snapshot, safe beside the running gateway); the
 * gateway key, admin token, store master secret, TLS material, held posts, queued jobs
 * and the embedded Maildir are copied file by file. That is consistent for Maildir
 * because a message file never changes once in cur/ or new/ (only its name, when flags
 * change), and each folder's dovecot-uidlist is copied after its messages, so every
 * copied message keeps its UID. The per-user index (recrypt-index.sqlite) is a cache
 * the store rebuilds when missing (src/store/README.md) and is left out, as are the proxy's
 * point cache, the LMTP socket and every tmp/ folder's content.
 */
import Database from 'better-sqlite3';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { lstat, mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { GATEWAY_KEY_FILE } from '../../keystore/index.js';
import { parseUidList } from '../../store/maildir/uidlist.js';
import { CliError } from '../errors.js';
import { VERSION } from '../version.js';
import {
  MANIFEST_FILE,
  MANIFEST_FORMAT,
  MANIFEST_VERSION,
  copyHashed,
  hashFile,
  toManifestPath,
  type FileEntry,
  type Manifest,
  type Role,
} from './backup-manifest.js';
import type { OperatorContext } from './context.js';

export interface BackupReport {
  dir: string;
  manifest: Manifest;
}

/**
 * Caches, rebuilt when missing: the embedded store's per-user index (from the Maildir) and
 * the proxy's point cache (recomputed at the next fetch).
 */
const CACHE_FILE = /^(recrypt-index|point-cache)\.sqlite(-wal|-shm|-journal)?$/;

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === 'ENOENT';
}

/** The part of a Maildir file name that survives a flag change (before ":2,"). */
function maildirBase(name: string): string {
  const colon = name.indexOf(':');
  return colon === -1 ? name : name.slice(0, colon);
}

class BackupWriter {
  readonly files: FileEntry[] = [];
  readonly dirs: string[] = [];
  readonly skipped: string[] = [];

  constructor(readonly target: string) {}

  async add(from: string, path: string, role: Role): Promise<boolean> {
    const to = join(this.target, path);
    await mkdir(dirname(to), { recursive: true, mode: 0o700 });
    try {
      const copied = await copyHashed(from, to);
      this.files.push({ path: toManifestPath(path), role, ...copied });
      return true;
    } catch (error) {
      if (isMissing(error)) return false;
      // Listed twice (a listing during a rename may show both names): copied already.
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return true;
      throw error;
    }
  }

  async addDir(path: string): Promise<void> {
    await mkdir(join(this.target, path), { recursive: true, mode: 0o700 });
    this.dirs.push(toManifestPath(path));
  }

  async drop(paths: string[]): Promise<void> {
    for (const path of paths) {
      await rm(join(this.target, path), { force: true });
      const at = this.files.findIndex((f) => f.path === toManifestPath(path));
      if (at !== -1) this.files.splice(at, 1);
    }
  }
}

export async function backupGateway(context: OperatorContext, dir: string): Promise<BackupReport> {
  process.umask(0o077);
  const target = resolve(dir);
  const dataDir = context.dataDir;
  if (!existsSync(dataDir)) throw new CliError(`no data directory at ${dataDir}`);
  if (existsSync(target) && readdirSync(target).length > 0)
    throw new CliError(`${target} is not empty: back up into a new or empty directory`);
  if (isInside(dataDir, target))
    throw new CliError(`${target} lies inside the data directory ${dataDir}`);
  mkdirSync(target, { recursive: true, mode: 0o700 });

  const { config } = context;
  const writer = new BackupWriter(target);
  const notIncluded: string[] = [];
  // Files handled by their role, never by the walk below.
  const handled = new Set<string>();

  let keyStorePath: string | undefined;
  if (config.keyStore.kind === 'sqlite') {
    keyStorePath = isAbsolute(config.keyStore.path)
      ? config.keyStore.path
      : resolve(dataDir, config.keyStore.path);
    for (const suffix of ['', '-wal', '-shm', '-journal']) handled.add(keyStorePath + suffix);
    await snapshotSqlite(keyStorePath, join(target, 'keystore.sqlite'));
    writer.files.push({
      path: 'keystore.sqlite',
      role: 'keystore',
      ...(await hashFile(join(target, 'keystore.sqlite'))),
    });
  } else {
    notIncluded.push(
      `the key store (${config.keyStore.kind}): back it up with Redis's own persistence (BGSAVE, or the AOF/RDB files of every node)`,
    );
  }

  handled.add(context.tokenFile);
  if (!(await writer.add(context.tokenFile, 'admin.token', 'admin-token')))
    notIncluded.push(`the admin token: none at ${context.tokenFile}`);
  if (context.configFile !== undefined) {
    await writer.add(resolve(context.configFile), 'recrypt.yaml', 'config');
  } else {
    notIncluded.push('a config file: the gateway runs on the defaults');
  }
  if (config.tls !== undefined) {
    for (const [name, file] of [
      ['key.pem', config.tls.key],
      ['cert.pem', config.tls.cert],
    ] as const) {
      const path = resolve(file);
      handled.add(path);
      await writer.add(path, join('tls-configured', name), 'tls-configured');
    }
  }
  if (config.mailStore.kind === 'dovecot') {
    notIncluded.push(
      "the mail: Dovecot's mail directories (back them up as Dovecot's documentation says)",
    );
    if (config.mailStore.master.passwordFile !== undefined)
      notIncluded.push(
        `Dovecot's master password file ${config.mailStore.master.passwordFile} (outside the data directory)`,
      );
  }
  // The gateway key first among the data files: without it no recryption key unwraps.
  await writer.add(join(dataDir, GATEWAY_KEY_FILE), join('data', GATEWAY_KEY_FILE), 'data');
  handled.add(join(dataDir, GATEWAY_KEY_FILE));
  await copyTree(writer, dataDir, '', handled);

  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    created: new Date().toISOString(),
    gatewayVersion: VERSION,
    dataDir,
    keyStore: config.keyStore.kind,
    mailStore: config.mailStore.kind,
    notIncluded,
    skipped: writer.skipped,
    dirs: writer.dirs,
    files: writer.files,
  };
  writeFileSync(join(target, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`, {
    mode: 0o600,
    flag: 'wx',
  });
  return { dir: target, manifest };
}

function isInside(parent: string, child: string): boolean {
  const rel = relative(resolve(parent), resolve(child));
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** SQLite's online backup: one consistent snapshot while the gateway writes. */
async function snapshotSqlite(from: string, to: string): Promise<void> {
  if (!existsSync(from)) throw new CliError(`no key store at ${from}`);
  const db = new Database(from, { readonly: true, fileMustExist: true });
  try {
    await db.backup(to);
  } finally {
    db.close();
  }
}

/**
 * Copies the data directory below `rel`: in every directory its subdirectories first,
 * then its files, so that a Maildir folder's messages are copied before its uidlist and
 * a held post's message before its record (held-posts.ts writes them in that order).
 */
async function copyTree(
  writer: BackupWriter,
  dataDir: string,
  rel: string,
  handled: Set<string>,
): Promise<void> {
  const abs = join(dataDir, rel);
  let names: string[];
  try {
    names = (await readdir(abs)).sort(recordsLast);
  } catch (error) {
    if (isMissing(error)) return;
    throw error;
  }
  if (rel !== '') await writer.addDir(join('data', rel));
  const files: string[] = [];
  for (const name of names) {
    const path = join(abs, name);
    const relPath = join(rel, name);
    if (handled.has(path)) continue;
    const info = await lstat(path).catch((error: unknown) => {
      if (isMissing(error)) return undefined;
      throw error;
    });
    if (info === undefined) continue;
    if (info.isDirectory()) {
      if (name === 'tmp' && (isMaildirFolder(abs) || rel === 'queue')) {
        // Maildir tmp/ holds only deliveries in progress; queue/tmp jobs being written.
        await writer.addDir(join('data', relPath));
      } else if (rel === 'queue' && name === 'prepared') {
        await writer.addDir(join('data', relPath));
      } else if (basename(rel) === 'pending' && dirname(rel) === 'queue') {
        await copyJob(writer, dataDir, relPath);
      } else {
        await copyTree(writer, dataDir, relPath, handled);
      }
    } else if (info.isFile()) {
      if (CACHE_FILE.test(name) || /^\..*\.tmp$/.test(name)) continue;
      files.push(name);
    } else {
      writer.skipped.push(`${relPath} (not a regular file or directory)`);
    }
  }
  const inMessages =
    (basename(abs) === 'cur' || basename(abs) === 'new') && isMaildirFolder(dirname(abs));
  for (const name of files) {
    const from = join(abs, name);
    if (await writer.add(from, join('data', rel, name), 'data')) continue;
    // Gone between the listing and the copy: a Maildir message renamed by a flag change
    // is found again under its new name; anything else was removed and is left out.
    if (inMessages) await copyRenamed(writer, dataDir, dirname(rel), maildirBase(name));
  }
  if (isMaildirFolder(abs)) await copyMissed(writer, dataDir, rel);
}

/**
 * A directory listing taken while files are renamed in it may miss a renamed file. The
 * folder's uidlist, copied after its messages, names every message that existed before
 * then: one it names that the copy lacks is looked up again (if it is gone, it was
 * expunged, and the restored store drops its UID at the first scan).
 */
async function copyMissed(writer: BackupWriter, dataDir: string, rel: string): Promise<void> {
  const copiedList = join(writer.target, 'data', rel, 'dovecot-uidlist');
  let list: ReturnType<typeof parseUidList>;
  try {
    list = parseUidList(await readFile(copiedList, 'utf8'));
  } catch (error) {
    if (isMissing(error)) return;
    throw error;
  }
  if (list === null) return;
  const prefix = toManifestPath(join('data', rel)) + '/';
  const copied = new Set(
    writer.files
      .filter(
        (f) => f.path.startsWith(prefix) && /^(cur|new)\/[^/]+$/.test(f.path.slice(prefix.length)),
      )
      .map((f) => maildirBase(f.path.slice(prefix.length + 4))),
  );
  for (const entry of list.entries) {
    if (!copied.has(entry.base)) await copyRenamed(writer, dataDir, rel, entry.base);
  }
}

/** Sorts `.json` records after everything else, names otherwise in order. */
function recordsLast(a: string, b: string): number {
  const ja = a.endsWith('.json') ? 1 : 0;
  const jb = b.endsWith('.json') ? 1 : 0;
  return ja - jb || (a < b ? -1 : a > b ? 1 : 0);
}

function isMaildirFolder(dir: string): boolean {
  return existsSync(join(dir, 'cur')) && existsSync(join(dir, 'new'));
}

async function copyRenamed(
  writer: BackupWriter,
  dataDir: string,
  folderRel: string,
  base: string,
): Promise<void> {
  for (const sub of ['cur', 'new']) {
    const names = await readdir(join(dataDir, folderRel, sub)).catch(() => [] as string[]);
    const found = names.find((n) => maildirBase(n) === base);
    if (found === undefined) continue;
    const rel = join(folderRel, sub, found);
    if (await writer.add(join(dataDir, rel), join('data', rel), 'data')) return;
  }
}

/** A queued job is its message and its meta.json together, or not at all. */
async function copyJob(writer: BackupWriter, dataDir: string, jobRel: string): Promise<void> {
  const names = await readdir(join(dataDir, jobRel)).catch(() => [] as string[]);
  const copied: string[] = [];
  for (const name of names.sort(recordsLast)) {
    const rel = join('data', jobRel, name);
    if (!(await writer.add(join(dataDir, jobRel, name), rel, 'data'))) {
      await writer.drop(copied);
      return;
    }
    copied.push(rel);
  }
  if (copied.length > 0) writer.dirs.push(toManifestPath(join('data', jobRel)));
}
