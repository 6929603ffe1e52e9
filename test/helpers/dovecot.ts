/**
 * A throwaway real Dovecot (imapd + lmtpd from Debian's packages) for tests, built from
 * the documented deployment config `config/dovecot/dovecot.conf` (docs/deployment.md),
 * listening on 127.0.0.1 on free ports, with a master user for IMAP logins as any user:
 * AUTHENTICATE PLAIN with authzid = the mail user, authcid = masterUser.
 *
 * Runs in the foreground (`dovecot -F`) as a child of the test process so that stop()
 * ends exactly the process it started. Mail persists across restart() (same ports, same
 * directories), so a test can stop the store mid-stream and bring it back.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireBinary } from './binaries.js';
import { freePort } from './ports.js';
import { tempDir, tempDirInMemory } from './tmp.js';

export interface DovecotOptions {
  /** Appended to the configuration, e.g. `lmtp_hdr_delivery_address = none`. */
  extraConfig?: string;
  /**
   * Its directories on tmpfs where there is room (tmp.ts tempDirInMemory): for tests that
   * make many small writes, each fsynced, and are not about durability.
   */
  inMemory?: boolean;
}

export interface Dovecot {
  imapPort: number;
  lmtpPort: number;
  masterUser: string;
  masterPassword: string;
  /** Root of the users' mail: `<mailDir>/<user>/Maildir`. */
  mailDir: string;
  /** Everything Dovecot writes (mail, state, log), for tests that grep it. */
  baseDir: string;
  /** Stops Dovecot; idempotent. Does not remove the directories (stop() then remove()). */
  stop(): Promise<void>;
  /** Stops (if running) and starts again on the same ports with the same mail. */
  restart(): Promise<void>;
  /** Stops and deletes every file it wrote. Call in afterAll. */
  remove(): Promise<void>;
}

// A test process that dies without afterAll must not leave Dovecot running.
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

const templatePath = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'config',
  'dovecot',
  'dovecot.conf',
);

/** Dovecot's mail processes must not run as root: the example config uses `vmail`. */
function ensureVmailUser(): void {
  try {
    execFileSync('getent', ['passwd', 'vmail'], { stdio: 'ignore' });
  } catch {
    try {
      execFileSync('useradd', ['-r', '-M', '-s', '/usr/sbin/nologin', 'vmail'], {
        stdio: 'ignore',
      });
    } catch (error) {
      // Another test file may have created it concurrently.
      execFileSync('getent', ['passwd', 'vmail'], { stdio: 'ignore' });
      void error;
    }
  }
}

async function waitForPort(port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`dovecot exited with code ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`dovecot did not listen on ${port} within ${timeoutMs} ms`);
}

export async function startDovecot(options: DovecotOptions = {}): Promise<Dovecot> {
  const dovecotBinary = requireBinary('dovecot');
  ensureVmailUser();
  const base = (options.inMemory === true ? tempDirInMemory : tempDir)('recrypt-dovecot-');
  // The mail processes run as vmail and must traverse the (root-owned) base directory.
  chmodSync(base.path, 0o755);
  const mailDir = join(base.path, 'mail');
  for (const dir of ['run', 'state', 'mail']) mkdirSync(join(base.path, dir), { recursive: true });
  execFileSync('chown', ['vmail:vmail', mailDir]);

  const imapPort = await freePort();
  const lmtpPort = await freePort();
  const masterUser = 'gateway';
  const masterPassword = randomBytes(18).toString('base64url');
  writeFileSync(join(base.path, 'master.passwd'), `${masterUser}:{PLAIN}${masterPassword}\n`, {
    mode: 0o640,
  });
  execFileSync('chown', ['root:dovecot', join(base.path, 'master.passwd')]);
  const config =
    readFileSync(templatePath, 'utf8')
      .replaceAll('$BASE', base.path)
      .replaceAll('$LISTEN', '127.0.0.1')
      .replaceAll('$IMAP_PORT', String(imapPort))
      .replaceAll('$LMTP_PORT', String(lmtpPort))
      // The template's static passdb holds a fixed "unguessable" value; make it really so.
      .replace(
        'password=an-unguessable-random-value',
        `password=${randomBytes(24).toString('hex')}`,
      ) + `\n${options.extraConfig ?? ''}\n`;
  const configPath = join(base.path, 'dovecot.conf');
  writeFileSync(configPath, config);

  let child: ChildProcess | undefined;

  const start = async (): Promise<void> => {
    const proc = spawn(dovecotBinary, ['-F', '-c', configPath], { stdio: 'ignore' });
    child = proc;
    live.add(proc);
    proc.once('exit', () => live.delete(proc));
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    (proc as ChildProcess & { exited?: Promise<void> }).exited = exited;
    try {
      await waitForPort(imapPort, proc, 15_000);
      await waitForPort(lmtpPort, proc, 15_000);
    } catch (error) {
      const log = existsSync(join(base.path, 'dovecot.log'))
        ? readFileSync(join(base.path, 'dovecot.log'), 'utf8').slice(-2000)
        : '';
      await stop();
      throw new Error(`${(error as Error).message}\n${log}`, { cause: error });
    }
  };

  const stop = async (): Promise<void> => {
    const proc = child as (ChildProcess & { exited?: Promise<void> }) | undefined;
    child = undefined;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await proc.exited;
    clearTimeout(timer);
  };

  await start();
  return {
    imapPort,
    lmtpPort,
    masterUser,
    masterPassword,
    mailDir,
    baseDir: base.path,
    stop,
    restart: async () => {
      await stop();
      await start();
    },
    remove: async () => {
      await stop();
      base.remove();
    },
  };
}
