/**
 * Bad input for every command, through the real CLI against the real admin server: each
 * gets one clear line on stderr (no stack trace), exit 1 (2 for usage errors), leaves no
 * file behind and changes nothing in the key store.
 */
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { snapshot } from '../helpers/cli-api.js';
import {
  addDeviceViaCli,
  addUserViaCli,
  enrolViaCli,
  startCliWorld,
  type CliWorld,
  type EnrolledOwner,
} from '../helpers/cli-flow.js';
import { runCli, type CliResult } from '../helpers/cli-run.js';
import { freePort } from '../helpers/ports.js';

const ADDRESS = 'dora@example.com';

function expectFailure(result: CliResult, code: 1 | 2, message: RegExp): void {
  expect(result.code, result.stderr).toBe(code);
  expect(result.stderr).toMatch(message);
  expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
  expect(result.stderr).not.toMatch(/\n\s+at /);
  expect(result.stdout).toBe('');
}

describe('recrypt CLI refuses bad input cleanly', () => {
  let world: CliWorld;
  let owner: EnrolledOwner;
  let laptopPassword: string;

  /**
   * Runs the cases' commands side by side (they are independent), checks each result, then
   * that the key store and the owner's directory are as before them. Checked once all have
   * ended: a command's own temporary file, removed when it fails, is not another's change.
   */
  async function expectFailures(
    cases: Array<[() => Promise<CliResult>, 1 | 2, RegExp]>,
  ): Promise<CliResult[]> {
    const before = await snapshot(world.gateway.keyStore);
    const files = readdirSync(owner.dir).sort();
    const results = await Promise.all(cases.map(([run]) => run()));
    results.forEach((result, i) => expectFailure(result, cases[i]![1], cases[i]![2]));
    expect(await snapshot(world.gateway.keyStore)).toBe(before);
    expect(readdirSync(owner.dir).sort()).toEqual(files);
    return results;
  }

  beforeAll(async () => {
    world = await startCliWorld();
    owner = await enrolViaCli(world, ADDRESS, 'Dora');
    laptopPassword = (await addDeviceViaCli(owner, 'laptop')).p12Password;
  });
  afterAll(async () => {
    await world?.close();
  });

  it('usage errors exit 2', async () => {
    await expectFailures([
      [() => runCli(['user', 'add']), 2, /missing required argument 'address'/],
      [() => runCli(['frobnicate']), 2, /unknown command 'frobnicate'/],
      [
        () => runCli(['owner', 'init', ADDRESS]),
        2,
        /required option '--token <token>' not specified/,
      ],
      [
        () => owner.run(['device', 'add', 'phone', '--client', 'mutt']),
        2,
        /--client <kind>.*mutt.*invalid/,
      ],
      [
        () => runCli(['device', 'add', 'phone', '--passphrase', 'secret']),
        2,
        /unknown option '--passphrase'/,
      ],
    ]);
  });

  it('malformed addresses', async () => {
    await expectFailures([
      [
        () => world.operator(['user', 'add', 'not an address']),
        1,
        /^recrypt: malformed address "not an address"/,
      ],
      [() => world.operator(['user', 'remove', 'x@-bad-.com']), 1, /malformed address/],
      [() => owner.run(['smimea', 'no-at-sign']), 1, /malformed address/],
      [
        () =>
          owner.run([
            'owner',
            'init',
            'a@b@c',
            '--token',
            'x'.repeat(43),
            '--gateway',
            world.gateway.origin,
            '--key-file',
            'other.key',
          ]),
        1,
        /malformed address/,
      ],
    ]);
  });

  it('unknown users', async () => {
    await expectFailures([
      [
        () => world.operator(['user', 'remove', 'nobody@example.com']),
        1,
        /user not found \(HTTP 404\)/,
      ],
      [
        () =>
          owner.run([
            'owner',
            'init',
            'nobody@example.com',
            '--token',
            'x'.repeat(43),
            '--gateway',
            world.gateway.origin,
            '--ca',
            'gateway-cert.pem',
            '--key-file',
            'nobody.key',
          ]),
        1,
        /user not found/,
      ],
      [
        () => owner.run(['profile', 'show', 'nobody@example.com']),
        1,
        /no profile published for nobody@example.com/,
      ],
    ]);
  });

  it('used and wrong enrolment tokens; an existing user; an existing key file', async () => {
    const used = [
      'owner',
      'init',
      ADDRESS,
      '--token',
      owner.token,
      '--gateway',
      world.gateway.origin,
      '--ca',
      'gateway-cert.pem',
      '--key-file',
      'second.key',
    ];
    // The one change first (erin added), then the refusals side by side, each changing nothing.
    const { ownerArgs } = await addUserViaCli(world, 'erin@example.com');
    const wrong = ownerArgs.map((arg, i) =>
      ownerArgs[i - 1] === '--token' ? 'A'.repeat(43) : arg,
    );
    await expectFailures([
      [() => owner.run(used), 1, /refused the enrolment token \(wrong, expired or already used\)/],
      [() => owner.run([...wrong, '--key-file', 'erin.key']), 1, /refused the enrolment token/],
      [() => world.operator(['user', 'add', ADDRESS]), 1, /already exists|HTTP 409/],
      [() => owner.run(ownerArgs), 1, /owner\.key already exists; not overwriting/],
    ]);
  });

  it('wrong passphrase, missing passphrase, corrupt and altered key files', async () => {
    const text = readFileSync(owner.keyFile, 'utf8');
    const json = JSON.parse(text) as Record<string, unknown>;
    const variants: Array<[string, string, RegExp]> = [
      ['truncated', text.slice(0, text.length / 2), /not an owner key file \(not JSON\)/],
      [
        'no ciphertext',
        JSON.stringify({ ...json, ciphertext: undefined }),
        /not a valid owner key file: ciphertext/,
      ],
      [
        'huge kdf',
        JSON.stringify({ ...json, kdf: { name: 'scrypt', logN: 30, r: 8, p: 1 } }),
        /not a valid owner key file: kdf\.logN/,
      ],
      [
        'flipped byte',
        JSON.stringify({ ...json, ciphertext: `A${String(json['ciphertext']).slice(1)}` }),
        /wrong passphrase .*or the file was altered/,
      ],
      [
        'other gateway',
        JSON.stringify({ ...json, gateway: 'https://evil.example:8443' }),
        /wrong passphrase .*or the file was altered/,
      ],
    ];
    // One file per variant, written before any command runs, so that they all run side by side.
    variants.forEach(([, content], i) => writeFileSync(join(owner.dir, `bad-${i}.key`), content));
    const results = await expectFailures([
      ...variants.map(([, , message], i): [() => Promise<CliResult>, 1, RegExp] => [
        () => owner.run(['device', 'add', 'phone', '--key-file', `bad-${i}.key`]),
        1,
        message,
      ]),
      [
        () => owner.run(['device', 'add', 'phone'], { RECRYPT_PASSPHRASE: 'wrong' }),
        1,
        /^recrypt: wrong passphrase for owner\.key/,
      ],
      [
        () => runCli(['device', 'list'], { cwd: owner.dir }),
        1,
        /no passphrase: run in a terminal, or set RECRYPT_PASSPHRASE/,
      ],
      [
        () => owner.run(['device', 'list', '--passphrase-file', 'missing.txt']),
        1,
        /cannot read the passphrase file missing\.txt: ENOENT/,
      ],
      [
        () => owner.run(['device', 'list', '--key-file', 'nope.key']),
        1,
        /no owner key file at nope\.key/,
      ],
    ]);
    // Each variant's result by name as well.
    variants.forEach(([what, , message], i) => expect(results[i]!.stderr, what).toMatch(message));
  });

  it('duplicate device names, unknown devices, existing .p12 files', async () => {
    const out = join(world.root, 'elsewhere');
    mkdirSync(out);
    await expectFailures([
      [
        () => owner.run(['device', 'add', 'laptop']),
        1,
        /laptop\.p12 already exists; not overwriting/,
      ],
      [
        () => owner.run(['device', 'add', 'laptop', '--out', out]),
        1,
        /a device named "laptop" already exists for dora@example\.com/,
      ],
      [() => owner.run(['device', 'add', '../escape']), 1, /device name "\.\.\/escape"/],
      [() => owner.run(['device', 'revoke', 'toaster']), 1, /no device named or with id "toaster"/],
    ]);
    expect(readdirSync(out)).toEqual([]);
  });

  it('an unreachable gateway', async () => {
    const closed = await freePort();
    // The one change first (fred added), then the failures side by side, each changing nothing.
    const { ownerArgs } = await addUserViaCli(world, 'fred@example.com');
    const args = ownerArgs.map((arg, i) =>
      ownerArgs[i - 1] === '--gateway' ? `https://127.0.0.1:${closed}` : arg,
    );
    // Without the gateway's certificate, TLS verification fails: also unreachable, nothing written.
    const noCa = ownerArgs.filter((arg, i) => arg !== '--ca' && ownerArgs[i - 1] !== '--ca');
    await expectFailures([
      [
        () =>
          runCli(['user', 'list', '--config', world.configFile], {
            env: { RECRYPT_OPERATOR__PORT: String(closed) },
          }),
        1,
        new RegExp(`cannot reach the gateway at https://127\\.0\\.0\\.1:${closed}: ECONNREFUSED`),
      ],
      [() => owner.run([...args, '--key-file', 'fred.key']), 1, /cannot reach the gateway/],
      [
        () => owner.run([...noCa, '--key-file', 'fred.key']),
        1,
        /cannot reach the gateway .*(SELF_SIGNED|self-signed|DEPTH_ZERO)/i,
      ],
    ]);
    // The token was not used up by the failures: enrolment still works.
    const enrolled = await owner.run([...ownerArgs, '--key-file', 'fred.key']);
    expect(enrolled.stderr).toBe('');
    expect(enrolled.code).toBe(0);
  });

  it('read with a wrong .p12 password or a message not for this device', async () => {
    writeFileSync(join(owner.dir, 'plain.eml'), 'Subject: hi\r\n\r\nnot encrypted\r\n');
    await expectFailures([
      [
        () =>
          owner.run(['read', 'plain.eml', '--p12', 'laptop.p12'], {
            RECRYPT_P12_PASSWORD: 'wrong',
          }),
        1,
        /wrong password for laptop\.p12/,
      ],
      [
        () =>
          owner.run(['read', 'plain.eml', '--p12', 'laptop.p12'], {
            RECRYPT_P12_PASSWORD: laptopPassword,
          }),
        1,
        /cannot decrypt plain\.eml with this device key: not an S\/MIME enveloped message/,
      ],
      [
        () =>
          owner.run(['read', 'missing.eml', '--p12', 'laptop.p12'], {
            RECRYPT_P12_PASSWORD: laptopPassword,
          }),
        1,
        /cannot read the message missing\.eml: ENOENT/,
      ],
    ]);
  });

  it('init refuses to move the data directory; operator commands without a gateway say what is missing', async () => {
    const empty = join(world.root, 'empty');
    mkdirSync(empty);
    await expectFailures([
      [
        () =>
          runCli(['init', '--config', world.configFile, '--data-dir', join(world.root, 'other')]),
        2,
        /already names the data directory .*; not changing it/,
      ],
      [
        () => runCli(['user', 'list'], { cwd: empty }),
        1,
        /no admin token file at .*empty\/data\/admin\.token \(run `recrypt init` first/,
      ],
      [
        () => runCli(['user', 'list', '--config', join(empty, 'none.yaml')]),
        1,
        /none\.yaml: cannot read: ENOENT/,
      ],
    ]);
    expect(readdirSync(empty)).toEqual([]);
  });

  it('profile publish, smimea and profile show refuse what they cannot do', async () => {
    await expectFailures([
      [
        () => owner.run(['profile', 'publish'], { RECRYPT_PASSPHRASE: 'nope' }),
        1,
        /wrong passphrase/,
      ],
      [
        () => owner.run(['smimea', 'nobody@example.com']),
        1,
        /no group certificate published for nobody@example\.com/,
      ],
      [
        () => owner.run(['profile', 'show', ADDRESS, '--gateway', 'http://127.0.0.1:1']),
        1,
        /gateway: expected https:\/\/host\[:port\]/,
      ],
    ]);
  });

  it('config check prints every problem with its line, or ok', async () => {
    const bad = join(world.root, 'bad.yaml');
    writeFileSync(bad, 'admin:\n  port: 99999\nsmtpp:\n  port: 25\n');
    const [result, good] = await Promise.all([
      runCli(['config', 'check', bad]),
      runCli(['config', 'check', world.configFile]),
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/bad\.yaml:2: admin\.port: /);
    expect(result.stderr).toMatch(/bad\.yaml:\d+: .*'smtpp'/);
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(good.code).toBe(0);
    expect(good.stdout).toBe('ok\n');
  });
});
