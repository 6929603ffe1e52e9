import { execFileSync } from 'node:child_process';

/**
 * Resolves an external binary a test needs (openssl, swaks, dovecot, …).
 * A missing binary is a failure, never a silent skip: `.ci/run` installs them all.
 */
export function requireBinary(name: string): string {
  try {
    return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(
      `required binary '${name}' is not installed; .ci/run installs it (see its apt-get line)`,
    );
  }
}
