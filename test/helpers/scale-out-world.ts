/**
 * Two `recrypt start` processes of one deployment, the way an operator scales out: a
 * throwaway redis-server as the key store, one real Dovecot as the mail store, data
 * directories of their own holding the same gateway key, TLS material and admin token
 * (copied from `recrypt init`), different ports, the same config otherwise. Both route
 * mail for `remote.test` to one loopback port where a test can stand up (or not) a real
 * SMTP server as the remote MX. Used by test/gateway/scale-out.test.ts.
 */
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { PASSPHRASE, addUserViaCli, type CliWorld, type EnrolledOwner } from './cli-flow.js';
import type { TestGateway } from './cli-gateway.js';
import { runCli, type CliResult } from './cli-run.js';
import { startDovecot, type Dovecot } from './dovecot.js';
import { startRecrypt, waitFor, type Spawned } from './gateway-process.js';
import { freePort } from './ports.js';
import { startRedis, type RedisServer } from './redis.js';
import { tempDir } from './tmp.js';

export interface GatewayProcess {
  name: 'A' | 'B';
  configFile: string;
  ports: { smtp: number; imap: number; starttls: number; admin: number; operator: number };
  adminUrl: string;
  /** Everything the process logged (JSON lines). */
  output(): string;
  start(): Promise<void>;
  /** SIGKILL to the process group: no shutdown, leases and all left as they are. */
  kill9(): Promise<void>;
  stop(): Promise<void>;
}

export interface ScaleOutWorld {
  root: string;
  redis: RedisServer;
  dovecot: Dovecot;
  a: GatewayProcess;
  b: GatewayProcess;
  /** Where both gateways send mail for remote.test. */
  remotePort: number;
  certFile: string;
  /** The CLI world of process A, for the shared enrolment helpers (test/helpers/cli-flow.ts). */
  cliWorld: CliWorld;
  operator(gateway: GatewayProcess, args: string[]): Promise<CliResult>;
  close(): Promise<void>;
}

async function gatewayProcess(
  name: 'A' | 'B',
  dir: string,
  base: Record<string, unknown>,
  shared: Record<string, unknown>,
): Promise<GatewayProcess> {
  const ports = {
    smtp: await freePort(),
    imap: await freePort(),
    starttls: await freePort(),
    admin: await freePort(),
    operator: await freePort(),
  };
  const configFile = join(dir, 'recrypt.yaml');
  writeFileSync(
    configFile,
    stringify({
      ...base,
      ...shared,
      dataDir: join(dir, 'data'),
      smtp: { ...(base.smtp as object), host: '127.0.0.1', port: ports.smtp },
      imap: {
        ...(base.imap as object),
        host: '127.0.0.1',
        port: ports.imap,
        starttlsPort: ports.starttls,
      },
      admin: { ...(base.admin as object), port: ports.admin },
      operator: { ...(base.operator as object), port: ports.operator },
    }),
  );
  let proc: Spawned | undefined;
  return {
    name,
    configFile,
    ports,
    adminUrl: `https://127.0.0.1:${ports.admin}`,
    output: () => proc?.output() ?? '',
    async start() {
      const started = startRecrypt(['--config', configFile], dir);
      proc = started;
      await waitFor(
        `gateway ${name} to start`,
        () => {
          if (started.child.exitCode !== null)
            throw new Error(`gateway ${name} exited: ${started.output()}`);
          return started.output().includes('"gateway started"');
        },
        90_000,
      );
    },
    async kill9() {
      const pid = proc?.child.pid;
      if (pid === undefined) return;
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // gone already
      }
      await proc!.exited;
    },
    stop: () => proc?.stop(5000) ?? Promise.resolve(),
  };
}

export async function startScaleOutWorld(): Promise<ScaleOutWorld> {
  const dir = tempDir('recrypt-scale-out-');
  const root = dir.path;
  // The three are independent: started side by side.
  const [redis, dovecot, init] = await Promise.all([
    startRedis(),
    startDovecot(),
    runCli(['init', '--config', join(root, 'a', 'recrypt.yaml')], { cwd: root }),
  ]);
  if (init.code !== 0) throw new Error(`recrypt init failed: ${init.stderr}`);
  // The second process gets the same gateway key, TLS material and admin token.
  mkdirSync(join(root, 'b', 'data'), { recursive: true, mode: 0o700 });
  for (const name of ['tls', 'gateway.key', 'admin.token'])
    cpSync(join(root, 'a', 'data', name), join(root, 'b', 'data', name), { recursive: true });
  const secret = join(root, 'master.secret');
  writeFileSync(secret, `${dovecot.masterPassword}\n`, { mode: 0o600 });
  const remotePort = await freePort();
  const base = parse(readFileSync(join(root, 'a', 'recrypt.yaml'), 'utf8')) as Record<
    string,
    unknown
  >;
  const shared = {
    keyStore: { kind: 'redis', url: redis.url },
    mailStore: {
      kind: 'dovecot',
      imap: { host: '127.0.0.1', port: dovecot.imapPort },
      lmtp: { host: '127.0.0.1', port: dovecot.lmtpPort },
      master: { user: dovecot.masterUser, passwordFile: secret },
    },
    outbound: {
      ...(base.outbound as object),
      heloName: 'gw.example.org',
      routes: { 'remote.test': `127.0.0.1:${remotePort}` },
      // Short, so that a test sees a retry and a lease run out.
      retryInitial: '2s',
      lease: '3s',
    },
  };
  const a = await gatewayProcess('A', join(root, 'a'), base, shared);
  const b = await gatewayProcess('B', join(root, 'b'), base, shared);
  // Both at once, as replicas of one deployment start.
  await Promise.all([a.start(), b.start()]);
  const certFile = join(root, 'a', 'data', 'tls', 'cert.pem');
  const operator = (gateway: GatewayProcess, args: string[]) =>
    runCli([...args, '--config', gateway.configFile], { cwd: root });
  const cliWorld: CliWorld = {
    root,
    configFile: a.configFile,
    gateway: { certFile } as TestGateway,
    operator: (args) => operator(a, args),
    close: () => Promise.resolve(),
  };
  return {
    root,
    redis,
    dovecot,
    a,
    b,
    remotePort,
    certFile,
    cliWorld,
    operator,
    async close() {
      await a.stop();
      await b.stop();
      await dovecot.remove();
      await redis.dispose();
      dir.remove();
    },
  };
}

/** The owner CLI's scrypt steps take long on a loaded 2-core machine: generous. */
const OWNER_CLI_TIMEOUT_MS = 240_000;

/**
 * `user add` through A's operator listener, then `owner init` exactly as printed, in a
 * fresh owner directory (test/helpers/cli-flow.ts `enrolViaCli`, with room for a loaded
 * machine).
 */
export async function enrolOwner(world: ScaleOutWorld, address: string): Promise<EnrolledOwner> {
  const { token, ownerArgs } = await addUserViaCli(world.cliWorld, address);
  const dir = join(world.root, `owner-${address.replace(/[^a-z0-9]/gi, '_')}`);
  mkdirSync(dir);
  copyFileSync(world.certFile, join(dir, 'gateway-cert.pem'));
  const run = (args: string[], env: Record<string, string> = {}) =>
    runCli(args, {
      cwd: dir,
      env: { RECRYPT_PASSPHRASE: PASSPHRASE, ...env },
      timeoutMs: OWNER_CLI_TIMEOUT_MS,
    });
  const init = await run(ownerArgs);
  if (init.code !== 0 || !init.stdout.includes('profile published'))
    throw new Error(`owner init failed (${init.code}): ${init.stderr}`);
  return { address, dir, keyFile: join(dir, 'owner.key'), token, run };
}

/** The device's key and certificate out of its .p12, for `openssl cms -decrypt`. */
export function deviceKeyFiles(
  p12File: string,
  password: string,
  dir: string,
): { keyFile: string; certFile: string } {
  const keyFile = join(dir, 'device.key');
  const certFile = join(dir, 'device.crt');
  const pass = `pass:${password}`;
  execFileSync('openssl', [
    'pkcs12',
    '-in',
    p12File,
    '-passin',
    pass,
    '-nodes',
    '-nocerts',
    '-out',
    keyFile,
  ]);
  execFileSync('openssl', [
    'pkcs12',
    '-in',
    p12File,
    '-passin',
    pass,
    '-nodes',
    '-clcerts',
    '-nokeys',
    '-out',
    certFile,
  ]);
  return { keyFile, certFile };
}

export function decryptWith(files: { keyFile: string; certFile: string }, message: Buffer): Buffer {
  return execFileSync(
    'openssl',
    ['cms', '-decrypt', '-recip', files.certFile, '-inkey', files.keyFile],
    { input: message, stdio: ['pipe', 'pipe', 'pipe'] },
  );
}

const PYTHON_FETCH = `
import imaplib, ssl, sys, json, base64
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.check_hostname = False
m = imaplib.IMAP4_SSL('127.0.0.1', int(sys.argv[1]), ssl_context=ctx, timeout=60)
m.login(sys.argv[3], sys.argv[4])
typ, _ = m.select('INBOX', readonly=True)
assert typ == 'OK', typ
typ, data = m.search(None, 'ALL')
out = []
for num in data[0].split():
    typ, parts = m.fetch(num, '(BODY.PEEK[])')
    out.append(base64.b64encode(parts[0][1]).decode())
m.logout()
print(json.dumps(out))
`;

/** Every INBOX message as the device's client sees it: Python's imaplib over TLS. */
export function fetchInbox(
  port: number,
  certFile: string,
  user: string,
  password: string,
): Buffer[] {
  const stdout = execFileSync(
    'python3',
    ['-c', PYTHON_FETCH, String(port), certFile, user, password],
    {
      encoding: 'utf8',
      timeout: 120_000,
    },
  );
  return (JSON.parse(stdout) as string[]).map((b64) => Buffer.from(b64, 'base64'));
}

const PYTHON_LOGIN = `
import imaplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.check_hostname = False
m = imaplib.IMAP4_SSL('127.0.0.1', int(sys.argv[1]), ssl_context=ctx, timeout=60)
try:
    m.login(sys.argv[3], sys.argv[4])
    print('OK')
    m.logout()
except imaplib.IMAP4.error as e:
    print('NO ' + str(e))
`;

/** One login attempt through imaplib: 'OK', or 'NO <the server's text>'. */
export function tryLogin(port: number, certFile: string, user: string, password: string): string {
  return execFileSync('python3', ['-c', PYTHON_LOGIN, String(port), certFile, user, password], {
    encoding: 'utf8',
    timeout: 120_000,
  }).trim();
}

const PYTHON_WAIT_BYE = `
import imaplib, ssl, sys, time
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.check_hostname = False
m = imaplib.IMAP4_SSL('127.0.0.1', int(sys.argv[1]), ssl_context=ctx, timeout=120)
m.login(sys.argv[3], sys.argv[4])
m.select('INBOX', readonly=True)  # EXAMINE: a list archive opens read-only
print('READY', flush=True)
sys.stdin.readline()
start = time.monotonic()
while True:
    line = m.readline()
    if not line:
        print('CLOSED %.3f' % (time.monotonic() - start), flush=True)
        break
    if b'BYE' in line:
        print('BYE %.3f %s' % (time.monotonic() - start, line.decode().strip()), flush=True)
        break
`;

/**
 * An open IMAP session (logged in, INBOX examined) that, once `armed()` is called, waits
 * for the server's BYE and reports it with the seconds since arming.
 */
export async function openSessionWaitingForBye(
  port: number,
  certFile: string,
  user: string,
  password: string,
): Promise<{ armed(): void; result: Promise<string> }> {
  const child = spawn('python3', ['-c', PYTHON_WAIT_BYE, String(port), certFile, user, password], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
  const result = new Promise<string>((resolve) => child.on('exit', () => resolve(out + err)));
  await waitFor('the IMAP session to be open', () => {
    if (child.exitCode !== null) throw new Error(`IMAP session ended: ${out}${err}`);
    return out.includes('READY');
  });
  return { armed: () => child.stdin.write('go\n'), result };
}
