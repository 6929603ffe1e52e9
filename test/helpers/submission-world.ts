/**
 * Two real gateways for the sending tests: each made by `recrypt init`, its listeners
 * moved to free loopback ports, and run as its own `recrypt start` process. Gateway A has
 * submission on, reaches B's MX through `outbound.routes` and B's published profiles
 * through `submission.discovery.origins` (B's self-signed certificate as the CA). Users
 * are added with `recrypt user add`, enrolled with `recrypt owner init` (which publishes
 * their profile) and get a device with `recrypt device add`; the device's .p12 is opened
 * with `openssl pkcs12` so that `openssl cms -decrypt` can read with that key only.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse, stringify } from 'yaml';
import { parseDeviceAdd, PASSPHRASE } from './cli-flow.js';
import { runCli, type CliResult } from './cli-run.js';
import { startRecrypt, waitFor, type Spawned } from './gateway-process.js';
import { freePort } from './ports.js';

export interface GatewayPorts {
  smtp: number;
  imap: number;
  starttls: number;
  admin: number;
  operator: number;
  storeImap: number;
  submission: number;
  submissionTls: number;
}

export interface RunningTestGateway {
  name: string;
  dir: string;
  configFile: string;
  dataDir: string;
  certFile: string;
  ports: GatewayPorts;
  process: Spawned;
  /** An operator command with `--config`. */
  operator(args: string[]): Promise<CliResult>;
}

export interface Device {
  address: string;
  ownerDir: string;
  id: string;
  /** The device's IMAP (and submission) password. */
  password: string;
  keyFile: string;
  certFile: string;
  /** An owner command in the owner's directory. */
  owner(args: string[]): Promise<CliResult>;
}

export async function makeGateway(
  root: string,
  name: string,
  extra: (ports: GatewayPorts) => Record<string, unknown>,
): Promise<RunningTestGateway> {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const configFile = join(dir, 'recrypt.yaml');
  const init = await runCli(['init', '--config', configFile], { cwd: dir });
  if (init.code !== 0) throw new Error(`recrypt init failed: ${init.stderr}`);
  const ports = {} as GatewayPorts;
  for (const key of [
    'smtp',
    'imap',
    'starttls',
    'admin',
    'operator',
    'storeImap',
    'submission',
    'submissionTls',
  ] as const)
    ports[key] = await freePort();
  const raw = parse(readFileSync(configFile, 'utf8')) as Record<string, unknown>;
  Object.assign(raw, {
    logLevel: 'info',
    smtp: { host: '127.0.0.1', port: ports.smtp },
    imap: { host: '127.0.0.1', port: ports.imap, starttlsPort: ports.starttls },
    admin: { port: ports.admin },
    operator: { port: ports.operator },
    mailStore: { kind: 'embedded', imapPort: ports.storeImap },
    ...extra(ports),
  });
  writeFileSync(configFile, stringify(raw));
  const dataDir = resolve(dir, typeof raw['dataDir'] === 'string' ? raw['dataDir'] : 'data');
  const certFile = join(dataDir, 'tls', 'cert.pem');
  const process = startRecrypt(['--config', configFile], dir);
  await waitFor(
    `gateway ${name} to listen`,
    () => {
      if (process.child.exitCode !== null)
        throw new Error(`gateway ${name} exited: ${process.output()}`);
      return /"msg":"gateway started"/.test(process.output());
    },
    120_000,
  );
  return {
    name,
    dir,
    configFile,
    dataDir,
    certFile,
    ports,
    process,
    operator: (args) => runCli([...args, '--config', configFile], { cwd: dir }),
  };
}

/** user add → owner init (publishes the profile) → device add → key and cert as PEM. */
export async function enrolWithDevice(
  gateway: RunningTestGateway,
  address: string,
): Promise<Device> {
  const added = await gateway.operator(['user', 'add', address]);
  if (added.code !== 0) throw new Error(`user add failed: ${added.stderr}`);
  const command = /^ {2}recrypt (owner init .*)$/m.exec(added.stdout)?.[1];
  if (command === undefined) throw new Error(`no owner command in: ${added.stdout}`);
  const ownerDir = join(gateway.dir, `owner-${address.replace(/[^a-z0-9]/gi, '_')}`);
  mkdirSync(ownerDir);
  copyFileSync(gateway.certFile, join(ownerDir, 'gateway-cert.pem'));
  const owner = (args: string[]) =>
    runCli(args, { cwd: ownerDir, env: { RECRYPT_PASSPHRASE: PASSPHRASE }, timeoutMs: 120_000 });
  const init = await owner(command.split(' '));
  if (init.code !== 0 || !init.stdout.includes('profile published'))
    throw new Error(`owner init failed: ${init.stderr}${init.stdout}`);
  return addDevice(gateway, address, ownerDir, owner, 'laptop');
}

export async function addDevice(
  _gateway: RunningTestGateway,
  address: string,
  ownerDir: string,
  owner: (args: string[]) => Promise<CliResult>,
  name: string,
): Promise<Device> {
  const result = await owner(['device', 'add', name]);
  if (result.code !== 0) throw new Error(`device add failed: ${result.stderr}`);
  const device = parseDeviceAdd(result.stdout, ownerDir);
  const keyFile = join(ownerDir, `${name}.key`);
  const certFile = join(ownerDir, `${name}.crt`);
  const pass = `pass:${device.p12Password}`;
  const p12 = ['pkcs12', '-in', device.p12File, '-passin', pass, '-nodes'];
  execFileSync('openssl', [...p12, '-nocerts', '-out', keyFile]);
  execFileSync('openssl', [...p12, '-clcerts', '-nokeys', '-out', certFile]);
  return {
    address,
    ownerDir,
    id: device.id,
    password: device.devicePassword,
    keyFile,
    certFile,
    owner,
  };
}

/**
 * The messages of `mailbox` as the device's client sees them: Python's imaplib over TLS
 * through the gateway's IMAP proxy, whole messages (BODY.PEEK[]), in sequence order.
 */
export function fetchThroughProxy(
  gateway: RunningTestGateway,
  device: Device,
  mailbox = 'INBOX',
): Buffer[] {
  const script = `
import imaplib, ssl, sys, json, base64
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.check_hostname = False
m = imaplib.IMAP4_SSL('127.0.0.1', int(sys.argv[1]), ssl_context=ctx, timeout=60)
m.login(sys.argv[3], sys.argv[4])
typ, _ = m.select(sys.argv[5], readonly=True)
assert typ == 'OK', typ
typ, data = m.search(None, 'ALL')
out = []
for num in data[0].split():
    typ, parts = m.fetch(num, '(BODY.PEEK[])')
    out.append(base64.b64encode(parts[0][1]).decode())
m.logout()
print(json.dumps(out))
`;
  const stdout = execFileSync(
    'python3',
    [
      '-c',
      script,
      String(gateway.ports.imap),
      gateway.certFile,
      device.address,
      device.password,
      mailbox,
    ],
    { encoding: 'utf8', timeout: 120_000 },
  );
  return (JSON.parse(stdout) as string[]).map((b64) => Buffer.from(b64, 'base64'));
}

/** `openssl cms -decrypt` with the device's key; null when it cannot read the message. */
export function decryptWith(device: Device, message: Uint8Array): Buffer | null {
  try {
    return execFileSync(
      'openssl',
      ['cms', '-decrypt', '-recip', device.certFile, '-inkey', device.keyFile],
      { input: message, stdio: ['pipe', 'pipe', 'pipe'] },
    );
  } catch {
    return null;
  }
}
