/**
 * `recrypt restore <backup> --config <file>`: puts a `recrypt backup` back under the data
 * directory that the given config names (docs/operations.md, "Backup and restore"). It
 * checks every file against the manifest before writing anything, refuses a data
 * directory that is not empty (a restore never mixes two gateways' state), and writes
 * directories 0700 and files 0600. The gateway must not be running on the target.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { CliError } from '../errors.js';
import {
  MANIFEST_FILE,
  copyHashed,
  hashFile,
  manifestSchema,
  type FileEntry,
  type Manifest,
} from './backup-manifest.js';
import type { OperatorContext } from './context.js';

export interface RestoreReport {
  dataDir: string;
  restored: number;
  /** What the operator still has to do by hand. */
  notes: string[];
}

export function readManifest(backupDir: string): Manifest {
  const file = join(backupDir, MANIFEST_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new CliError(
      (error as NodeJS.ErrnoException).code === 'ENOENT'
        ? `no ${MANIFEST_FILE} in ${backupDir}: not a backup, or one that did not finish`
        : `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new CliError(`${file} is not JSON`);
  }
  const parsed = manifestSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new CliError(`${file}: ${issue.path.join('.') || 'manifest'}: ${issue.message}`);
  }
  return parsed.data;
}

/** Every listed file present with its size and SHA-256; the problems found. */
export async function verifyBackup(backupDir: string, manifest: Manifest): Promise<string[]> {
  const problems: string[] = [];
  for (const entry of manifest.files) {
    const path = join(backupDir, entry.path);
    try {
      if (!statSync(path).isFile()) {
        problems.push(`${entry.path}: not a file`);
        continue;
      }
      const found = await hashFile(path);
      if (found.bytes !== entry.bytes || found.sha256 !== entry.sha256)
        problems.push(`${entry.path}: content differs from the manifest (sha256)`);
    } catch (error) {
      problems.push(`${entry.path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
  }
  return problems;
}

function isEmptyOrMissing(path: string): boolean {
  if (!existsSync(path)) return true;
  return statSync(path).isDirectory() && readdirSync(path).length === 0;
}

/** Where the target config puts a file of the backup; null when restore leaves it. */
function destinationOf(context: OperatorContext, entry: FileEntry): string | null {
  switch (entry.role) {
    case 'data':
      return join(context.dataDir, entry.path.slice('data/'.length));
    case 'keystore': {
      const ks = context.config.keyStore;
      if (ks.kind !== 'sqlite') return null;
      return isAbsolute(ks.path) ? ks.path : resolve(context.dataDir, ks.path);
    }
    case 'admin-token':
      return context.tokenFile;
    default:
      return null;
  }
}

export async function restoreGateway(
  context: OperatorContext,
  backup: string,
): Promise<RestoreReport> {
  process.umask(0o077);
  const backupDir = resolve(backup);
  const manifest = readManifest(backupDir);
  for (const entry of manifest.files) {
    if (entry.role === 'data' && !entry.path.startsWith('data/'))
      throw new CliError(`${MANIFEST_FILE}: ${entry.path}: a data file outside data/`);
  }
  for (const dir of manifest.dirs) {
    if (!dir.startsWith('data/')) throw new CliError(`${MANIFEST_FILE}: ${dir}: outside data/`);
  }
  const problems = await verifyBackup(backupDir, manifest);
  if (problems.length > 0) {
    const shown = problems.slice(0, 5).join('; ');
    const more = problems.length > 5 ? ` (and ${problems.length - 5} more)` : '';
    throw new CliError(`the backup ${backupDir} fails its manifest check: ${shown}${more}`);
  }

  const dataDir = context.dataDir;
  if (!isEmptyOrMissing(dataDir))
    throw new CliError(
      `the data directory ${dataDir} is not empty: restore only into a new or empty one`,
    );
  const hasKeyStore = manifest.files.some((f) => f.role === 'keystore');
  if (hasKeyStore && context.config.keyStore.kind !== 'sqlite')
    throw new CliError(
      `the backup holds a SQLite key store, but the config uses ${context.config.keyStore.kind}`,
    );
  const plan = manifest.files.flatMap((entry) => {
    const to = destinationOf(context, entry);
    return to === null ? [] : [{ entry, to }];
  });
  for (const { to } of plan) {
    // Outside the data directory (absolute keyStore.path or admin.tokenFile): never replace.
    if (existsSync(to)) throw new CliError(`${to} exists: not replacing it`);
  }

  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  for (const dir of manifest.dirs) {
    await mkdir(join(dataDir, dir.slice('data/'.length)), { recursive: true, mode: 0o700 });
  }
  for (const { entry, to } of plan) {
    await mkdir(dirname(to), { recursive: true, mode: 0o700 });
    const copied = await copyHashed(join(backupDir, entry.path), to);
    // Checked again as written: the backup may have changed since the check above.
    if (copied.sha256 !== entry.sha256)
      throw new CliError(`${entry.path} changed while being restored; remove ${dataDir} and retry`);
  }

  const notes: string[] = [...manifest.notIncluded.map((what) => `not in the backup: ${what}`)];
  if (manifest.files.some((f) => f.role === 'config'))
    notes.push(`the backed-up config is ${join(backupDir, 'recrypt.yaml')} (not written)`);
  if (manifest.files.some((f) => f.role === 'tls-configured'))
    notes.push(
      `the configured TLS key and certificate are in ${join(backupDir, 'tls-configured')}: put them where tls.key and tls.cert point`,
    );
  return { dataDir, restored: plan.length, notes };
}
