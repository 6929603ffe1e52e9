import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../config/atomic-file.js';
import { StartupError } from './startup-errors.js';

export const ADMIN_TOKEN_FILE = 'admin.token';
export const MASTER_SECRET_FILE = 'store-master.secret';

/**
 * A secret kept in a file of the data directory (mode 0600), made on first use. Used for
 * the operator's admin token and the embedded store's master password: generated, never
 * typed, never in the config file.
 */
export function loadOrCreateSecretFile(path: string): string {
  try {
    const value = readFileSync(path, 'utf8').trim();
    if (value.length > 0) return value;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const value = randomBytes(32).toString('base64url');
  writeFileAtomic(path, `${value}\n`, 0o600);
  return value;
}

export function readSecretFile(path: string, what: string): string {
  let value: string;
  try {
    value = readFileSync(path, 'utf8').trim();
  } catch (error) {
    throw new StartupError(
      `${what}: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? error}`,
      {
        cause: error,
      },
    );
  }
  if (value.length === 0) throw new StartupError(`${what}: ${path} is empty`);
  return value;
}

export function dataFile(dataDir: string, name: string): string {
  return join(dataDir, name);
}
