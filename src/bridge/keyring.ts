/**
 * The OS keyring, for the bridge's cache key (cache-key.ts, docs/bridge.md "The OS
 * keyring"): Linux's Secret Service through `secret-tool` (libsecret-tools; GNOME Keyring,
 * KWallet and KeePassXC answer it), macOS's login Keychain through `security`. The
 * secret never appears on a command line: `secret-tool store` reads it from stdin, and
 * `security` gets its command on stdin (`security -i`). Every call is bounded in time and
 * output. The macOS path is not tested here (no macOS in CI).
 */
import { spawn } from 'node:child_process';

export class KeyringUnavailableError extends Error {
  override readonly name = 'KeyringUnavailableError';
}

export interface Keyring {
  /** What the error messages call it. */
  readonly name: string;
  /** The secret stored under `account`; null when there is none. Throws KeyringUnavailableError. */
  lookup(account: string): Promise<string | null>;
  /** Stores (or replaces) the secret of `account`. Throws KeyringUnavailableError. */
  store(account: string, label: string, secret: string): Promise<void>;
}

/** The `service` attribute of every entry the bridge keeps. */
export const KEYRING_SERVICE = 'recrypt-bridge';
/** A keyring that does not answer within this is treated as missing (it may wait on a prompt). */
const CALL_TIMEOUT_MS = 15_000;
/** More than any secret the bridge stores, or any error line. */
const MAX_OUTPUT = 64 * 1024;

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function call(command: string, args: string[], input: string, what: string): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let size = 0;
    const collect = (into: Buffer[]) => (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_OUTPUT) child.kill('SIGKILL');
      else into.push(chunk);
    };
    child.stdout.on('data', collect(out));
    child.stderr.on('data', collect(err));
    const timer = setTimeout(() => child.kill('SIGKILL'), CALL_TIMEOUT_MS);
    child.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new KeyringUnavailableError(
          error.code === 'ENOENT'
            ? `${command} is not installed (${what})`
            : `${command} did not run: ${error.message}`,
        ),
      );
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (signal !== null)
        return reject(new KeyringUnavailableError(`${command} did not answer (${what})`));
      resolve({
        code,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8').trim(),
      });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

/** Linux: the Secret Service over D-Bus (`secret-tool`, package libsecret-tools). */
export function secretServiceKeyring(command = 'secret-tool'): Keyring {
  const what = 'the Secret Service, package libsecret-tools';
  return {
    name: 'the Secret Service (secret-tool)',
    async lookup(account) {
      const r = await call(
        command,
        ['lookup', 'service', KEYRING_SERVICE, 'account', account],
        '',
        what,
      );
      if (r.code === 0) return r.stdout;
      // Exit 1 and silence: no such entry. Anything said: the service is not there
      // (no D-Bus session, no keyring daemon, a locked keyring that was not opened).
      if (r.code === 1 && r.stderr === '') return null;
      throw new KeyringUnavailableError(r.stderr || `secret-tool lookup failed (exit ${r.code})`);
    },
    async store(account, label, secret) {
      const r = await call(
        command,
        ['store', `--label=${label}`, 'service', KEYRING_SERVICE, 'account', account],
        secret,
        what,
      );
      if (r.code !== 0)
        throw new KeyringUnavailableError(r.stderr || `secret-tool store failed (exit ${r.code})`);
    },
  };
}

/** A `security -i` argument: double-quoted, with `"` and `\` escaped. */
function quoted(text: string): string {
  return `"${text.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** macOS: the login Keychain (`security`). Not tested here: see the file comment. */
export function macKeychain(command = '/usr/bin/security'): Keyring {
  const what = 'the macOS Keychain';
  return {
    name: 'the macOS Keychain (security)',
    async lookup(account) {
      const r = await call(
        command,
        ['find-generic-password', '-s', KEYRING_SERVICE, '-a', account, '-w'],
        '',
        what,
      );
      if (r.code === 0) return r.stdout.replace(/\n$/, '');
      // 44: errSecItemNotFound, as security's exit status.
      if (r.code === 44) return null;
      throw new KeyringUnavailableError(r.stderr || `security failed (exit ${r.code})`);
    },
    async store(account, label, secret) {
      const line = [
        'add-generic-password',
        '-U',
        '-s',
        quoted(KEYRING_SERVICE),
        '-a',
        quoted(account),
        '-l',
        quoted(label),
        '-w',
        quoted(secret),
      ].join(' ');
      const r = await call(command, ['-i'], `${line}\n`, what);
      if (r.code !== 0 || r.stderr !== '')
        throw new KeyringUnavailableError(r.stderr || `security failed (exit ${r.code})`);
    },
  };
}

/** The keyring of this system; null where the bridge knows none. */
export function systemKeyring(platform: NodeJS.Platform = process.platform): Keyring | null {
  if (platform === 'darwin') return macKeychain();
  if (platform === 'linux' || platform === 'freebsd' || platform === 'openbsd')
    return secretServiceKeyring();
  return null;
}
