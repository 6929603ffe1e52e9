/**
 * The backup directory's `manifest.json` (docs/operations.md, "Backup and restore"): what
 * the backup holds, each file's role, size and SHA-256. It is written last, so a backup
 * without one is incomplete. The hashes find damage and accidental edits, not a forger:
 * whoever can change a file can change the manifest too, so the backup (it holds the
 * gateway key) must be kept where only the operator can write and read it.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { isAbsolute, normalize, sep } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { z } from 'zod';

export const MANIFEST_FILE = 'manifest.json';
export const MANIFEST_FORMAT = 'recrypt-backup';
export const MANIFEST_VERSION = 1;

/**
 * Where a file goes back to at restore: `data` files to the same place under the target's
 * data directory; `keystore` and `admin-token` to where the target config names them;
 * `config` and `tls-configured` are kept for the operator and not written by restore.
 */
export const ROLES = ['data', 'keystore', 'admin-token', 'config', 'tls-configured'] as const;
export type Role = (typeof ROLES)[number];

/** A path inside the backup: relative, '/'-separated, no '.' or '..' level. */
const backupPath = z
  .string()
  .min(1)
  .refine((path) => isSafeRelative(path), 'a relative path inside the backup');

const fileEntry = z.strictObject({
  path: backupPath,
  role: z.enum(ROLES),
  bytes: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});
export type FileEntry = z.infer<typeof fileEntry>;

export const manifestSchema = z.strictObject({
  format: z.literal(MANIFEST_FORMAT),
  version: z.literal(MANIFEST_VERSION),
  created: z.string(),
  gatewayVersion: z.string(),
  /** The data directory the backup was taken from (for the operator's information). */
  dataDir: z.string(),
  keyStore: z.enum(['sqlite', 'redis', 'redis-cluster', 'redis-sentinel']),
  mailStore: z.enum(['embedded', 'dovecot']),
  /** What this backup does not contain and the operator must back up by other means. */
  notIncluded: z.array(z.string()),
  /** Entries of the data directory left out on purpose (sockets, links, caches). */
  skipped: z.array(z.string()),
  /** Directories under data/ to re-create (Maildir tmp/ folders are empty but required). */
  dirs: z.array(backupPath),
  files: z.array(fileEntry),
});
export type Manifest = z.infer<typeof manifestSchema>;

export function isSafeRelative(path: string): boolean {
  if (isAbsolute(path) || path.includes('\\') || path.includes('\0')) return false;
  const levels = path.split('/');
  return levels.every((level) => level !== '' && level !== '.' && level !== '..');
}

/** `path` (a platform path relative to some root) as a manifest path. */
export function toManifestPath(path: string): string {
  return normalize(path).split(sep).join('/');
}

export interface Copied {
  bytes: number;
  sha256: string;
}

/**
 * Copies `from` to `to` (created 0600, never over an existing file), hashing the bytes as
 * they pass, so the hash is of exactly what was written.
 */
export async function copyHashed(from: string, to: string): Promise<Copied> {
  const hash = createHash('sha256');
  let bytes = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  try {
    await pipeline(
      createReadStream(from),
      tap,
      createWriteStream(to, { flags: 'wx', mode: 0o600 }),
    );
  } catch (error) {
    // The source vanished (or a read failed) after the target was made: leave no stub.
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') await rm(to, { force: true });
    throw error;
  }
  return { bytes, sha256: hash.digest('hex') };
}

export async function hashFile(path: string): Promise<Copied> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { bytes, sha256: hash.digest('hex') };
}
