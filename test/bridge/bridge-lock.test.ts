/**
 * One bridge per data directory (docs/bridge.md, "One bridge per data directory";
 * src/bridge/data-dir-lock.ts), with `recrypt bridge` run as a person runs it against a
 * real gateway (test/helpers/bridge-world.ts): a second bridge on a directory in use is
 * refused, naming the first's pid, before it asks for a passphrase, and the first serves
 * on; a stop releases the directory; a lock left by a bridge killed with SIGKILL does not
 * stop the next start; and a second `runBridge` in one process is refused as well.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBridge } from '../../src/bridge/bridge.js';
import { BridgeError } from '../../src/bridge/errors.js';
import { bridgeServing, spawnBridge, type BridgeProcess } from '../helpers/bridge-process.js';
import {
  ADDRESS,
  PASSPHRASE,
  startBridgeWorld,
  type BridgeWorld,
} from '../helpers/bridge-world.js';
import { tempDir } from '../helpers/tmp.js';

const dir = tempDir('recrypt-bridge-lock-');
const dataDir = join(dir.path, 'bridge-data');
const lockFile = join(dataDir, 'bridge.lock');
let world: BridgeWorld;

beforeAll(async () => {
  world = await startBridgeWorld(dir.path);
  const first = await runBridge({ ...world.options(dataDir, true), plainOnly: true });
  await first.close();
}, 120_000);

afterAll(async () => {
  await world?.close();
  dir.remove();
});

/** `passphrase: false`: none given, and stdin is not a terminal (spawnBridge ignores it). */
function startCli(options: { detached?: boolean; passphrase?: false } = {}): BridgeProcess {
  return spawnBridge(
    ['--data-dir', dataDir, '--plain', '--imap-port', '0', '--smtp-port', '0'],
    options.passphrase === false ? {} : { RECRYPT_BRIDGE_PASSPHRASE: PASSPHRASE },
    { detached: options.detached === true },
  );
}

/** Waits until `bridge` serves, and checks that it does (it did not exit instead). */
async function serving(bridge: BridgeProcess): Promise<void> {
  await bridgeServing(bridge);
  expect(bridge.child.exitCode, bridge.output()).toBeNull();
  expect(bridge.output()).toContain(`bridge running for ${ADDRESS}`);
}

async function stopped(bridge: BridgeProcess): Promise<void> {
  bridge.child.kill('SIGTERM');
  expect((await bridge.exited).code, bridge.output()).toBe(0);
}

describe('recrypt bridge: one per data directory', () => {
  it('refuses a second bridge on a data directory in use, naming the pid of the first, which serves on', async () => {
    expect(existsSync(lockFile)).toBe(false);
    const first = startCli();
    try {
      await serving(first);
      expect(readFileSync(lockFile, 'utf8')).toBe(`${first.child.pid}\n`);

      const refusal =
        `recrypt: another bridge (pid ${first.child.pid}) uses ${dataDir}: ` +
        `stop it first (its lock is ${lockFile})\n`;
      const second = startCli();
      expect((await second.exited).code).toBe(1);
      expect(second.output()).toBe(refusal);
      // Refused before it asks for the passphrase: not "no bridge passphrase: run in a
      // terminal…" (nor a prompt, on a terminal) for a bridge that cannot start anyway.
      const unprompted = startCli({ passphrase: false });
      expect((await unprompted.exited).code).toBe(1);
      expect(unprompted.output()).toBe(refusal);
      expect(first.child.exitCode).toBeNull();
      expect(readFileSync(lockFile, 'utf8')).toBe(`${first.child.pid}\n`);
    } finally {
      await stopped(first);
    }
    // Released at the stop: the next start takes the directory.
    expect(existsSync(lockFile)).toBe(false);
  });

  it('starts over the lock of a bridge killed with SIGKILL', async () => {
    const killed = startCli({ detached: true });
    await serving(killed);
    killed.child.kill('SIGKILL');
    expect((await killed.exited).signal).toBe('SIGKILL');
    // The lock stays behind, naming a process that is gone.
    expect(readFileSync(lockFile, 'utf8')).toBe(`${killed.child.pid}\n`);

    const next = startCli();
    try {
      await serving(next);
      expect(readFileSync(lockFile, 'utf8')).toBe(`${next.child.pid}\n`);
    } finally {
      await stopped(next);
    }
    expect(existsSync(lockFile)).toBe(false);
  });

  it('refuses a second runBridge in the same process, and releases the directory when a start fails', async () => {
    const options = { ...world.options(dataDir, false), plainOnly: true };
    const first = await runBridge(options);
    try {
      const refused = await runBridge(options).catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(BridgeError);
      expect((refused as BridgeError).code).toBe('in-use');
      expect((refused as Error).message).toContain(`another bridge (pid ${process.pid})`);
    } finally {
      await first.close();
    }
    expect(existsSync(lockFile)).toBe(false);
    // A start that fails after the lock (a wrong passphrase) leaves the directory free.
    await expect(runBridge({ ...options, passphrase: 'not the passphrase' })).rejects.toSatisfy(
      (error) => error instanceof BridgeError && error.code === 'bad-passphrase',
    );
    expect(existsSync(lockFile)).toBe(false);
  });
});
