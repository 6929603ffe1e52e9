/**
 * The steps the CLI tests share, each through the real `recrypt` process: a gateway made
 * by `recrypt init` and served by the real admin server, `user add`, `owner init` with
 * the exact command `user add` printed, and `device add` with its printed secrets parsed.
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { expect } from 'vitest';
import type { GatewayConfig } from '../../src/config/schema.js';
import { prepareConfig, startGatewayFromConfig, type TestGateway } from './cli-gateway.js';
import { runCli, type CliResult } from './cli-run.js';
import { tempDir } from './tmp.js';

export const PASSPHRASE = 'correct horse battery staple';

export interface CliWorld {
  root: string;
  configFile: string;
  gateway: TestGateway;
  /** Runs an operator command with `--config` appended. */
  operator(args: string[]): Promise<CliResult>;
  close(): Promise<void>;
}

export async function startCliWorld(
  keyStore?: GatewayConfig['keyStore'],
  logger?: Logger,
): Promise<CliWorld> {
  const dir = tempDir('recrypt-cli-');
  const configFile = join(dir.path, 'gateway', 'recrypt.yaml');
  let gateway: TestGateway | undefined;
  try {
    const init = await runCli(['init', '--config', configFile], { cwd: dir.path });
    expect(init.stderr).toBe('');
    expect(init.code).toBe(0);
    await prepareConfig(configFile, keyStore);
    gateway = await startGatewayFromConfig(configFile, undefined, logger);
  } catch (error) {
    dir.remove();
    throw error;
  }
  const started = gateway;
  return {
    root: dir.path,
    configFile,
    gateway: started,
    operator: (args) => runCli([...args, '--config', configFile], { cwd: dir.path }),
    async close() {
      await started.close();
      dir.remove();
    },
  };
}

export interface EnrolledOwner {
  address: string;
  dir: string;
  keyFile: string;
  token: string;
  /** Runs an owner command in the owner's directory with the passphrase in the environment. */
  run(args: string[], env?: Record<string, string>): Promise<CliResult>;
}

export async function addUserViaCli(
  world: CliWorld,
  address: string,
  name?: string,
): Promise<{ token: string; ownerArgs: string[]; stdout: string }> {
  const added = await world.operator(['user', 'add', address, ...(name ? ['--name', name] : [])]);
  expect(added.stderr).toBe('');
  expect(added.code).toBe(0);
  const token = /enrolment token \(one use, valid until [^)]+\): (\S+)/.exec(added.stdout)?.[1];
  const command = /^ {2}recrypt (owner init .*)$/m.exec(added.stdout)?.[1];
  expect(token).toBeDefined();
  expect(command).toBeDefined();
  return { token: token!, ownerArgs: command!.split(' '), stdout: added.stdout };
}

/** user add, then owner init exactly as printed, in a fresh owner directory. */
export async function enrolViaCli(
  world: CliWorld,
  address: string,
  name?: string,
): Promise<EnrolledOwner> {
  const { token, ownerArgs } = await addUserViaCli(world, address, name);
  const dir = join(world.root, `owner-${address.replace(/[^a-z0-9]/gi, '_')}`);
  mkdirSync(dir);
  copyFileSync(world.gateway.certFile, join(dir, 'gateway-cert.pem'));
  const run = (args: string[], env: Record<string, string> = {}) =>
    runCli(args, { cwd: dir, env: { RECRYPT_PASSPHRASE: PASSPHRASE, ...env } });
  const init = await run(ownerArgs);
  expect(init.stderr).toBe('');
  expect(init.code).toBe(0);
  expect(init.stdout).toContain('profile published');
  return { address, dir, keyFile: join(dir, 'owner.key'), token, run };
}

export interface AddedDeviceOutput {
  id: string;
  p12File: string;
  p12Password: string;
  devicePassword: string;
  stdout: string;
}

export function parseDeviceAdd(stdout: string, dir: string): AddedDeviceOutput {
  const field = (pattern: RegExp) => {
    const value = pattern.exec(stdout)?.[1];
    expect(value, `output has ${pattern}`).toBeDefined();
    return value!;
  };
  return {
    id: field(/\(id ([0-9a-f]+), client/),
    p12File: join(dir, field(/certificate and key: (\S+)/)),
    p12Password: field(/\.p12 password \(shown once\): (\S+)/),
    devicePassword: field(/ {2}password \(shown once\): (\S+)/),
    stdout,
  };
}

export async function addDeviceViaCli(
  owner: EnrolledOwner,
  name: string,
  client: 'standard' | 'outlook' = 'standard',
): Promise<AddedDeviceOutput> {
  const result = await owner.run(['device', 'add', name, '--client', client]);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return parseDeviceAdd(result.stdout, owner.dir);
}
