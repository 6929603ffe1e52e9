/**
 * A device pairs with its own key, end to end through the real processes: `recrypt
 * start` (embedded store, SQLite key store), the owner's `device invite`, the new
 * device's `device join` in its own directory, the owner's `device list --pending` and
 * `device approve <code>`. Then a message sent over SMTP is fetched through the proxy
 * with Python's imaplib as the new device and `openssl cms -decrypt` reads it with the
 * key from the device's own .p12. Finally every byte the gateway and the owner's tool
 * wrote (data directory, key store rows, config, logs, the owner's directory) is mined
 * for d, d⁻¹ and any value that decrypts the device's copy: nothing.
 */
import Database from 'better-sqlite3';
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join as joinPath } from 'node:path';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  invertScalar,
  readPkcs12,
  recipientIdOf,
  scalarToBytes,
  type Scalar,
} from '../../src/recrypt/index.js';
import { requireBinary } from '../helpers/binaries.js';
import { filesUnder, keysThatDecrypt, scalarCandidates } from '../helpers/cli-secret-scan.js';
import { parseDeviceAdd } from '../helpers/cli-flow.js';
import { cliCommand } from '../helpers/cli-command.js';
import { runCli, type CliResult } from '../helpers/cli-run.js';
import { waitFor, type Spawned } from '../helpers/gateway-process.js';
import {
  freeGatewayPorts,
  startGatewayProcess,
  writeGatewayConfig,
  type GatewayPorts,
} from '../helpers/gateway-instance.js';
import { expectWithinImporterLimits } from '../helpers/pkcs12-limits.js';
import { tempDir } from '../helpers/tmp.js';

const ADDRESS = 'dora@example.org';
const BODY = 'Paired devices read this, and nobody else.';
const tmp = tempDir('recrypt-pairing-');
const configFile = joinPath(tmp.path, 'recrypt.yaml');
const certFile = joinPath(tmp.path, 'data', 'tls', 'cert.pem');
const ownerDir = joinPath(tmp.path, 'owner');
const deviceDir = joinPath(tmp.path, 'device');
const env = { RECRYPT_PASSPHRASE: 'correct horse battery staple' };
let ports: GatewayPorts;
let gateway: Spawned | undefined;

const owner = (args: string[]) => runCli(args, { cwd: ownerDir, env });
const ok = (result: CliResult) => {
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return result.stdout;
};

/**
 * `recrypt device join` in the device's directory, its output readable while it waits for
 * the approval (runCli gives it only at the end): the test asks the owner's side for the
 * request once the device has printed its code, not on a guess.
 */
function startJoin(invitation: string): {
  output(): string;
  ended(): boolean;
  done: Promise<CliResult>;
} {
  const [node, ...prefix] = cliCommand();
  const child = spawn(
    node!,
    [...prefix, 'device', 'join', invitation, '--name', 'phone', '--wait', '5'],
    {
      cwd: deviceDir,
      // The environment runCli gives (test/helpers/cli-run.ts): no passphrase.
      env: Object.fromEntries(
        ['PATH', 'HOME', 'TMPDIR', 'LANG'].flatMap((name) =>
          process.env[name] === undefined ? [] : [[name, process.env[name]!]],
        ),
      ),
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  let ended = false;
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
  const done = new Promise<CliResult>((resolve, reject) => {
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      ended = true;
      resolve({ code, stdout, stderr });
    });
  });
  return { output: () => stdout, ended: () => ended, done };
}

beforeAll(async () => {
  for (const name of ['openssl', 'python3', 'curl']) requireBinary(name);
  ports = await freeGatewayPorts();
  writeGatewayConfig(tmp.path, ports, ['logLevel: info']);
  gateway = await startGatewayProcess(configFile, ports);
  const added = ok(
    await runCli(['user', 'add', ADDRESS, '--config', configFile], { cwd: tmp.path }),
  );
  const token = /enrolment token .*: (\S+)$/m.exec(added)![1]!;
  mkdirSync(ownerDir);
  mkdirSync(deviceDir);
  copyFileSync(certFile, joinPath(ownerDir, 'gateway-cert.pem'));
  ok(
    await owner([
      'owner',
      'init',
      ADDRESS,
      '--token',
      token,
      '--gateway',
      `https://127.0.0.1:${ports.admin}`,
      '--ca',
      'gateway-cert.pem',
    ]),
  );
}, 180_000);

afterAll(async () => {
  await gateway?.stop(5000);
  tmp.remove();
});

describe('device join / approve through a running gateway', () => {
  let joined: ReturnType<typeof parseDeviceAdd>;
  let joinOutput = '';
  let code = '';
  let deviceSecret: Scalar;
  let fetchedDer: Buffer;

  it('the device joins with an invitation, the owner approves the code it shows', async () => {
    const invitation = /^(rdi1\.\S+)$/m.exec(ok(await owner(['device', 'invite'])))![1]!;
    // The device has no owner key file: it runs in its own directory, with nothing but the invitation.
    const joining = startJoin(invitation);
    await waitFor(
      'the device to show its pairing code',
      // Ended early (a refusal or a crash): its output fails the checks below.
      () => /^pairing code: /m.test(joining.output()) || joining.ended(),
      120_000,
    );
    await waitFor(
      'the pairing request to reach the owner',
      async () => {
        const listed = ok(await owner(['device', 'list', '--pending']));
        code = /^([A-Z2-7]{4}-[A-Z2-7]{4})\tphone\tstandard\t/m.exec(listed)?.[1] ?? '';
        return code !== '';
      },
      120_000,
    );
    expect(ok(await owner(['device', 'approve', code]))).toMatch(
      /^device phone approved \(id [0-9a-f]{16}, client standard\)$/m,
    );
    joinOutput = ok(await joining.done);
    // Both sides showed the same code.
    expect(joinOutput).toContain(`pairing code: ${code}`);
    joined = parseDeviceAdd(joinOutput, deviceDir);
    expect(joined.p12File).toBe(joinPath(deviceDir, 'phone.p12'));
    const written = new Uint8Array(readFileSync(joined.p12File));
    expectWithinImporterLimits(written, 'device join .p12');
    const p12 = await readPkcs12(written, joined.p12Password);
    deviceSecret = p12.deviceSecret;
    // Two reads of the owner's side, side by side.
    const [listed, pending] = await Promise.all([
      owner(['device', 'list']),
      owner(['device', 'list', '--pending']),
    ]);
    expect(ok(listed)).toMatch(new RegExp(`^${joined.id}\\tphone\\tstandard\\tactive`, 'm'));
    expect(ok(pending)).toContain('no pairing requests waiting');
  }, 300_000);

  it('reads mail through the proxy: imaplib fetches as the device, openssl cms decrypts with its own .p12', async () => {
    await nodemailer
      .createTransport({ host: '127.0.0.1', port: ports.smtp, secure: false, ignoreTLS: true })
      .sendMail({
        from: 'eve@sender.example',
        to: ADDRESS,
        subject: 'paired',
        text: `${BODY}\r\n`,
      });
    const fetched = joinPath(deviceDir, 'fetched.eml');
    const script = [
      'import imaplib, ssl, sys',
      'ctx = ssl.create_default_context(cafile=sys.argv[1])',
      'ctx.check_hostname = False',
      "m = imaplib.IMAP4_SSL('127.0.0.1', int(sys.argv[2]), ssl_context=ctx)",
      'm.login(sys.argv[3], sys.argv[4])',
      "m.select('INBOX')",
      "typ, data = m.fetch('1', '(BODY.PEEK[])')",
      "open(sys.argv[5], 'wb').write(data[0][1])",
      'm.logout()',
    ].join('\n');
    execFileSync('python3', [
      '-c',
      script,
      certFile,
      String(ports.imap),
      ADDRESS,
      joined.devicePassword,
      fetched,
    ]);
    const pem = joinPath(deviceDir, 'phone.pem');
    execFileSync('openssl', [
      'pkcs12',
      '-in',
      joined.p12File,
      '-passin',
      `pass:${joined.p12Password}`,
      '-nodes',
      '-out',
      pem,
    ]);
    const plain = execFileSync('openssl', [
      'cms',
      '-decrypt',
      '-in',
      fetched,
      '-recip',
      pem,
      '-inkey',
      pem,
    ]).toString('utf8');
    expect(plain).toContain(BODY);
    fetchedDer = execFileSync('openssl', ['cms', '-cmsout', '-in', fetched, '-outform', 'DER']);
  }, 120_000);

  it("d never touches the gateway's or the owner's files: no d, no d⁻¹, nothing that decrypts", async () => {
    const candidates = new Set<string>();
    const blobs: Uint8Array[] = [
      ...filesUnder(joinPath(tmp.path, 'data')).map((f) => f.bytes),
      ...filesUnder(ownerDir).map((f) => f.bytes),
      new Uint8Array(readFileSync(configFile)),
      Buffer.from(gateway!.output()),
    ];
    const db = new Database(joinPath(tmp.path, 'data', 'keystore.sqlite'), { readonly: true });
    try {
      const tables = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .all() as Array<{ name: string }>;
      expect(tables.map((t) => t.name)).toContain('pairing_requests');
      for (const { name } of tables)
        for (const row of db.prepare(`SELECT * FROM "${name}"`).all() as Array<
          Record<string, unknown>
        >)
          for (const value of Object.values(row)) {
            if (value instanceof Uint8Array) blobs.push(value);
            else if (typeof value === 'string') blobs.push(Buffer.from(value, 'utf8'));
          }
    } finally {
      db.close();
    }
    for (const blob of blobs) scalarCandidates(blob, candidates);
    expect(candidates.size).toBeGreaterThan(1000);
    const hex = (k: Scalar) => Buffer.from(scalarToBytes(k)).toString('hex');
    expect(candidates.has(hex(deviceSecret))).toBe(false);
    expect(candidates.has(hex(invertScalar(deviceSecret)))).toBe(false);
    const p12 = await readPkcs12(new Uint8Array(readFileSync(joined.p12File)), joined.p12Password);
    const target = {
      what: 'the device copy',
      der: new Uint8Array(fetchedDer),
      recipientId: recipientIdOf(p12.certificate),
    };
    expect(keysThatDecrypt(candidates, [target])).toEqual([]);
    // Not vacuous: the same search finds d in the device's own PEM key.
    const found = keysThatDecrypt(
      scalarCandidates(readFileSync(joinPath(deviceDir, 'phone.pem'))),
      [target],
    );
    expect(found).toHaveLength(1);
  }, 300_000);
});
