/**
 * `recrypt start` with a broken configuration or environment: every case ends with one
 * line on stderr naming the problem, exit code 1, and no stack trace anywhere.
 */
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRecrypt, type Spawned } from '../helpers/gateway-process.js';
import { freePort } from '../helpers/ports.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir('recrypt-misconfig-');
const running: Spawned[] = [];
let busy: Server;
let busyPort: number;

/** A config on free ports, so these runs never collide with anything else. */
async function portsYaml(smtpPort?: number): Promise<string> {
  return [
    `smtp: { host: 127.0.0.1, port: ${smtpPort ?? (await freePort())} }`,
    `imap: { host: 127.0.0.1, port: ${await freePort()}, starttlsPort: ${await freePort()} }`,
    `admin: { port: ${await freePort()} }`,
    `operator: { port: ${await freePort()} }`,
  ].join('\n');
}

async function embeddedStore(): Promise<string> {
  return `mailStore: { kind: embedded, imapPort: ${await freePort()} }`;
}

let counter = 0;
async function startWith(
  yaml: string,
): Promise<{ code: number | string; stderr: string; output: string }> {
  const file = join(tmp.path, `case-${++counter}.yaml`);
  writeFileSync(file, `dataDir: ./data-${counter}\n${yaml}\n`);
  const run = startRecrypt(['--config', file], tmp.path);
  running.push(run);
  const timer = setTimeout(() => void run.stop(1000), 45_000);
  const code = await run.exited;
  clearTimeout(timer);
  return { code, stderr: run.stderr(), output: run.output() };
}

function expectOneLineFailure(
  result: { code: number | string; stderr: string; output: string },
  pattern: RegExp,
): void {
  const lines = result.stderr.split('\n').filter((line) => line.trim() !== '');
  expect(result.code, result.output).toBe(1);
  expect(lines, result.output).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(result.output).not.toMatch(/\n\s+at .+\(.*:\d+:\d+\)/);
}

beforeAll(async () => {
  busyPort = await freePort();
  busy = createServer();
  await new Promise<void>((resolve) => busy.listen(busyPort, '127.0.0.1', resolve));
});

afterAll(async () => {
  for (const run of running) await run.stop(2000);
  await new Promise<void>((resolve) => busy.close(() => resolve()));
  tmp.remove();
});

// Each case is its own process with its own config and data directory: side by side.
describe.concurrent('recrypt start refuses a broken setup in one line', () => {
  it('bad YAML: file and line', async () => {
    const result = await startWith('smtp:\n  port: [25\n');
    expectOneLineFailure(result, /case-\d+\.yaml:\d+: /);
  });

  it('unknown key: its path and name', async () => {
    const result = await startWith(`${await portsYaml()}\nsmpt_banner: hello`);
    expectOneLineFailure(result, /case-\d+\.yaml:\d+: .*smpt_banner/);
  });

  it('unreachable Redis: names the key store and its address', async () => {
    const closed = await freePort();
    const result = await startWith(
      `${await portsYaml()}\n${await embeddedStore()}\nkeyStore: { kind: redis, url: "redis://127.0.0.1:${closed}" }`,
    );
    expectOneLineFailure(
      result,
      new RegExp(`key store unreachable: redis redis://127\\.0\\.0\\.1:${closed}`),
    );
  });

  it('unreachable Dovecot: names the mail store endpoint', async () => {
    const imap = await freePort();
    const lmtp = await freePort();
    const result = await startWith(
      [
        await portsYaml(),
        'mailStore:',
        '  kind: dovecot',
        `  imap: { host: 127.0.0.1, port: ${imap} }`,
        `  lmtp: { host: 127.0.0.1, port: ${lmtp} }`,
        '  master: { user: recrypt, password: secret }',
      ].join('\n'),
    );
    expectOneLineFailure(
      result,
      new RegExp(`mail store unreachable: mailStore\\.imap 127\\.0\\.0\\.1:${imap}: ECONNREFUSED`),
    );
  });

  it('missing Dovecot master password file: names the option and the file', async () => {
    const result = await startWith(
      [
        await portsYaml(),
        'mailStore:',
        '  kind: dovecot',
        `  imap: { host: 127.0.0.1, port: ${await freePort()} }`,
        `  lmtp: { host: 127.0.0.1, port: ${await freePort()} }`,
        '  master: { user: recrypt, passwordFile: /nonexistent/master.secret }',
      ].join('\n'),
    );
    expectOneLineFailure(
      result,
      /mailStore\.master\.passwordFile: cannot read \/nonexistent\/master\.secret: ENOENT/,
    );
  });

  it('missing certificate file: names the option and the file', async () => {
    const result = await startWith(
      `${await portsYaml()}\n${await embeddedStore()}\ntls: { key: /nonexistent/key.pem, cert: /nonexistent/cert.pem }`,
    );
    expectOneLineFailure(result, /tls\.key: ENOENT: cannot read \/nonexistent\/key\.pem/);
  });

  it('port in use: names the option and the port', async () => {
    const result = await startWith(`${await portsYaml(busyPort)}\n${await embeddedStore()}`);
    expectOneLineFailure(result, new RegExp(`smtp\\.port ${busyPort} is already in use`));
  });
});
