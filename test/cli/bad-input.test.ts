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

  /** Runs `attempt`, then checks the key store and the owner's directory are as before. */
  async function unchanged(attempt: () => Promise<CliResult>): Promise<CliResult> {
    const before = await snapshot(world.gateway.keyStore);
    const files = readdirSync(owner.dir).sort();
    const result = await attempt();
    expect(await snapshot(world.gateway.keyStore)).toBe(before);
    expect(readdirSync(owner.dir).sort()).toEqual(files);
    return result;
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
    expectFailure(await runCli(['user', 'add']), 2, /missing required argument 'address'/);
    expectFailure(await runCli(['frobnicate']), 2, /unknown command 'frobnicate'/);
    expectFailure(
      await runCli(['owner', 'init', ADDRESS]),
      2,
      /required option '--token <token>' not specified/,
    );
    expectFailure(
      await unchanged(() => owner.run(['device', 'add', 'phone', '--client', 'mutt'])),
      2,
      /--client <kind>.*mutt.*invalid/,
    );
    expectFailure(
      await runCli(['device', 'add', 'phone', '--passphrase', 'secret']),
      2,
      /unknown option '--passphrase'/,
    );
  });

  it('malformed addresses', async () => {
    expectFailure(
      await unchanged(() => world.operator(['user', 'add', 'not an address'])),
      1,
      /^recrypt: malformed address "not an address"/,
    );
    expectFailure(
      await unchanged(() => world.operator(['user', 'remove', 'x@-bad-.com'])),
      1,
      /malformed address/,
    );
    expectFailure(
      await unchanged(() => owner.run(['smimea', 'no-at-sign'])),
      1,
      /malformed address/,
    );
    expectFailure(
      await unchanged(() =>
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
      ),
      1,
      /malformed address/,
    );
  });

  it('unknown users', async () => {
    expectFailure(
      await unchanged(() => world.operator(['user', 'remove', 'nobody@example.com'])),
      1,
      /user not found \(HTTP 404\)/,
    );
    expectFailure(
      await unchanged(() =>
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
      ),
      1,
      /user not found/,
    );
    expectFailure(
      await unchanged(() => owner.run(['profile', 'show', 'nobody@example.com'])),
      1,
      /no profile published for nobody@example.com/,
    );
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
    expectFailure(
      await unchanged(() => owner.run(used)),
      1,
      /refused the enrolment token \(wrong, expired or already used\)/,
    );
    const { ownerArgs } = await addUserViaCli(world, 'erin@example.com');
    const wrong = ownerArgs.map((arg, i) =>
      ownerArgs[i - 1] === '--token' ? 'A'.repeat(43) : arg,
    );
    expectFailure(
      await unchanged(() => owner.run([...wrong, '--key-file', 'erin.key'])),
      1,
      /refused the enrolment token/,
    );
    expectFailure(
      await unchanged(() => world.operator(['user', 'add', ADDRESS])),
      1,
      /already exists|HTTP 409/,
    );
    expectFailure(
      await unchanged(() => owner.run(ownerArgs)),
      1,
      /owner\.key already exists; not overwriting/,
    );
  });

  it('wrong passphrase, missing passphrase, corrupt and altered key files', async () => {
    expectFailure(
      await unchanged(() => owner.run(['device', 'add', 'phone'], { RECRYPT_PASSPHRASE: 'wrong' })),
      1,
      /^recrypt: wrong passphrase for owner\.key/,
    );
    expectFailure(
      await unchanged(() => runCli(['device', 'list'], { cwd: owner.dir })),
      1,
      /no passphrase: run in a terminal, or set RECRYPT_PASSPHRASE/,
    );
    expectFailure(
      await unchanged(() => owner.run(['device', 'list', '--passphrase-file', 'missing.txt'])),
      1,
      /cannot read the passphrase file missing\.txt: ENOENT/,
    );
    expectFailure(
      await unchanged(() => owner.run(['device', 'list', '--key-file', 'nope.key'])),
      1,
      /no owner key file at nope\.key/,
    );

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
    for (const [what, content, message] of variants) {
      writeFileSync(join(owner.dir, 'bad.key'), content);
      const result = await unchanged(() =>
        owner.run(['device', 'add', 'phone', '--key-file', 'bad.key']),
      );
      expect(result.stderr, what).toMatch(message);
      expectFailure(result, 1, message);
    }
  });

  it('duplicate device names, unknown devices, existing .p12 files', async () => {
    expectFailure(
      await unchanged(() => owner.run(['device', 'add', 'laptop'])),
      1,
      /laptop\.p12 already exists; not overwriting/,
    );
    const out = join(world.root, 'elsewhere');
    mkdirSync(out);
    expectFailure(
      await unchanged(() => owner.run(['device', 'add', 'laptop', '--out', out])),
      1,
      /a device named "laptop" already exists for dora@example\.com/,
    );
    expect(readdirSync(out)).toEqual([]);
    expectFailure(
      await unchanged(() => owner.run(['device', 'add', '../escape'])),
      1,
      /device name "\.\.\/escape"/,
    );
    expectFailure(
      await unchanged(() => owner.run(['device', 'revoke', 'toaster'])),
      1,
      /no device named or with id "toaster"/,
    );
  });

  it('an unreachable gateway', async () => {
    const closed = await freePort();
    expectFailure(
      await unchanged(() =>
        runCli(['user', 'list', '--config', world.configFile], {
          env: { RECRYPT_OPERATOR__PORT: String(closed) },
        }),
      ),
      1,
      new RegExp(`cannot reach the gateway at https://127\\.0\\.0\\.1:${closed}: ECONNREFUSED`),
    );
    const { ownerArgs } = await addUserViaCli(world, 'fred@example.com');
    const args = ownerArgs.map((arg, i) =>
      ownerArgs[i - 1] === '--gateway' ? `https://127.0.0.1:${closed}` : arg,
    );
    expectFailure(
      await unchanged(() => owner.run([...args, '--key-file', 'fred.key'])),
      1,
      /cannot reach the gateway/,
    );
    // Without the gateway's certificate, TLS verification fails: also unreachable, nothing written.
    const noCa = ownerArgs.filter((arg, i) => arg !== '--ca' && ownerArgs[i - 1] !== '--ca');
    expectFailure(
      await unchanged(() => owner.run([...noCa, '--key-file', 'fred.key'])),
      1,
      /cannot reach the gateway .*(SELF_SIGNED|self-signed|DEPTH_ZERO)/i,
    );
    // The token was not used up by the failures: enrolment still works.
    const enrolled = await owner.run([...ownerArgs, '--key-file', 'fred.key']);
    expect(enrolled.stderr).toBe('');
    expect(enrolled.code).toBe(0);
  });

  it('read with a wrong .p12 password or a message not for this device', async () => {
    writeFileSync(join(owner.dir, 'plain.eml'), 'Subject: hi\r\n\r\nnot encrypted\r\n');
    expectFailure(
      await unchanged(() =>
        owner.run(['read', 'plain.eml', '--p12', 'laptop.p12'], { RECRYPT_P12_PASSWORD: 'wrong' }),
      ),
      1,
      /wrong password for laptop\.p12/,
    );
    expectFailure(
      await unchanged(() =>
        owner.run(['read', 'plain.eml', '--p12', 'laptop.p12'], {
          RECRYPT_P12_PASSWORD: laptopPassword,
        }),
      ),
      1,
      /cannot decrypt plain\.eml with this device key: not an S\/MIME enveloped message/,
    );
    expectFailure(
      await unchanged(() =>
        owner.run(['read', 'missing.eml', '--p12', 'laptop.p12'], {
          RECRYPT_P12_PASSWORD: laptopPassword,
        }),
      ),
      1,
      /cannot read the message missing\.eml: ENOENT/,
    );
  });

  it('init refuses to move the data directory; operator commands without a gateway say what is missing', async () => {
    const moved = await runCli([
      'init',
      '--config',
      world.configFile,
      '--data-dir',
      join(world.root, 'other'),
    ]);
    expectFailure(moved, 2, /already names the data directory .*; not changing it/);
    const empty = join(world.root, 'empty');
    mkdirSync(empty);
    expectFailure(
      await runCli(['user', 'list'], { cwd: empty }),
      1,
      /no admin token file at .*empty\/data\/admin\.token \(run `recrypt init` first/,
    );
    expect(readdirSync(empty)).toEqual([]);
    expectFailure(
      await runCli(['user', 'list', '--config', join(empty, 'none.yaml')]),
      1,
      /none\.yaml: cannot read: ENOENT/,
    );
  });

  it('profile publish, smimea and profile show refuse what they cannot do', async () => {
    expectFailure(
      await unchanged(() => owner.run(['profile', 'publish'], { RECRYPT_PASSPHRASE: 'nope' })),
      1,
      /wrong passphrase/,
    );
    expectFailure(
      await unchanged(() => owner.run(['smimea', 'nobody@example.com'])),
      1,
      /no group certificate published for nobody@example\.com/,
    );
    expectFailure(
      await unchanged(() =>
        owner.run(['profile', 'show', ADDRESS, '--gateway', 'http://127.0.0.1:1']),
      ),
      1,
      /gateway: expected https:\/\/host\[:port\]/,
    );
  });

  it('config check prints every problem with its line, or ok', async () => {
    const bad = join(world.root, 'bad.yaml');
    writeFileSync(bad, 'admin:\n  port: 99999\nsmtpp:\n  port: 25\n');
    const result = await runCli(['config', 'check', bad]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/bad\.yaml:2: admin\.port: /);
    expect(result.stderr).toMatch(/bad\.yaml:\d+: .*'smtpp'/);
    expect(result.stderr).not.toMatch(/\n\s+at /);
    const good = await runCli(['config', 'check', world.configFile]);
    expect(good.code).toBe(0);
    expect(good.stdout).toBe('ok\n');
  });
});
