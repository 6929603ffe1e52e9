/**
 * A bridge killed while a whole folder's message files go (src/bridge/README.md, "Cache
 * at rest"): a folder renamed on the gateway (rename.ts), deleted there
 * (sync-folders.ts), or given a new UIDVALIDITY (sync.ts). The files go only after the
 * save that stops listing them, so a kill before that save leaves the folder as it was,
 * every listed message with its file (none dropped at open, nothing to fetch again, which
 * a revoked device could not), and a kill after it leaves files the next open removes.
 *
 * Real parts: a real gateway (test/helpers/bridge-world.ts), and the sync step run in a
 * process of its own (test/helpers/bridge-folder-child.ts) that stops right before or
 * right after its state journal write and is killed there with SIGKILL.
 */
import { spawn } from 'node:child_process';
import { cpSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBridge } from '../../src/bridge/bridge.js';
import { BridgeCache } from '../../src/bridge/cache.js';
import { openCacheKey } from '../../src/bridge/cache-key.js';
import {
  PASSPHRASE,
  plainMessage,
  startBridgeWorld,
  type BridgeWorld,
} from '../helpers/bridge-world.js';
import { cleanEnv } from '../helpers/gateway-process.js';
import { tempDir } from '../helpers/tmp.js';

const CHILD = join(import.meta.dirname, '..', 'helpers', 'bridge-folder-child.ts');

const dir = tempDir('recrypt-bridge-folder-crash-');
const base = join(dir.path, 'bridge-data');
let world: BridgeWorld;
let key: Buffer;

async function onGateway(work: (proxy: ImapFlow) => Promise<unknown>): Promise<void> {
  const proxy = await world.proxyClient();
  try {
    await work(proxy);
  } finally {
    await proxy.logout();
  }
}

beforeAll(async () => {
  world = await startBridgeWorld(dir.path);
  await world.deliver('first message', 'Hello Alice.\n');
  await onGateway(async (proxy) => {
    for (const name of ['Old', 'Doomed', 'Renewed']) {
      await proxy.mailboxCreate(name);
      for (const n of [1, 2])
        await proxy.append(name, plainMessage(`${name} ${n}`, `${name} ${n}`));
    }
  });
  const bridge = await runBridge({ ...world.options(base, true), plainOnly: true });
  await bridge.close();
  key = await openCacheKey(join(base, 'key.json'), PASSPHRASE);
}, 300_000);

afterAll(async () => {
  await world?.close();
  dir.remove();
});

/**
 * Runs the child's `step` on `dataDir` until it pauses at `pause` and kills it there; with
 * `none`, until it ends.
 */
async function runStep(
  dataDir: string,
  step: string,
  pause: 'before-save' | 'after-save' | 'none',
): Promise<void> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dataDir, step, pause], {
    env: cleanEnv({ RECRYPT_BRIDGE_PASSPHRASE: PASSPHRASE }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString('utf8');
    if (out.includes('paused\n')) child.kill('SIGKILL');
  });
  const { code, signal } = await exited;
  if (pause === 'none') expect({ code, out }).toEqual({ code: 0, out: 'done\n' });
  else expect({ signal, out }).toEqual({ signal: 'SIGKILL', out: 'paused\n' });
}

/** The base data directory copied, the step run on the copy and killed at `pause`; the copy reopened. */
async function killedAt(step: string, pause: 'before-save' | 'after-save'): Promise<BridgeCache> {
  const copy = join(dir.path, `killed-${pause}`);
  rmSync(copy, { recursive: true, force: true });
  cpSync(base, copy, { recursive: true });
  await runStep(copy, step, pause);
  return BridgeCache.open(join(copy, 'cache'), key);
}

/** Every mailbox the state lists with all its messages readable, and no other message file. */
function expectWhole(cache: BridgeCache, dataDir: string): void {
  const messages = join(dataDir, 'cache', 'messages');
  let files = 0;
  for (const mailbox of cache.mailboxes)
    for (const message of mailbox.messages) {
      expect(cache.readMessage(mailbox, message.uid)?.length).toBe(message.size);
      files += 1;
    }
  const onDisk = readdirSync(messages).flatMap((d) => readdirSync(join(messages, d)));
  expect(onDisk).toHaveLength(files);
}

function uidsOf(cache: BridgeCache, name: string): number[] | undefined {
  return cache.mailbox(name)?.messages.map((m) => m.uid);
}

describe('a bridge killed while a folder’s files go', () => {
  it('keeps a folder renamed on the gateway whole across a kill before or after the save', async () => {
    const before = (() => {
      const cache = BridgeCache.open(join(base, 'cache'), key);
      const uids = uidsOf(cache, 'Old');
      cache.close();
      return uids;
    })();
    expect(before).toHaveLength(2);
    await onGateway((proxy) => proxy.mailboxRename('Old', 'New'));

    const beforeSave = await killedAt('folders', 'before-save');
    // The journal still names Old: its files are all there, none dropped; the files
    // written under the new name are removed.
    expect(beforeSave.repairedAtOpen).toEqual({ messagesDropped: 0, orphanFilesRemoved: 2 });
    expect(uidsOf(beforeSave, 'Old')).toEqual(before);
    expect(uidsOf(beforeSave, 'New')).toBeUndefined();
    expectWhole(beforeSave, join(dir.path, 'killed-before-save'));
    beforeSave.close();

    const afterSave = await killedAt('folders', 'after-save');
    // The journal names New: the old name's files, not yet unlinked, are removed at open.
    expect(afterSave.repairedAtOpen).toEqual({ messagesDropped: 0, orphanFilesRemoved: 2 });
    expect(uidsOf(afterSave, 'New')).toEqual(before);
    expect(uidsOf(afterSave, 'Old')).toBeUndefined();
    expectWhole(afterSave, join(dir.path, 'killed-after-save'));
    afterSave.close();

    await runStep(base, 'folders', 'none');
  });

  it('keeps a folder deleted on the gateway whole across a kill before the save, and leaves nothing after it', async () => {
    await onGateway((proxy) => proxy.mailboxDelete('Doomed'));

    const beforeSave = await killedAt('folders', 'before-save');
    expect(beforeSave.repairedAtOpen).toEqual({ messagesDropped: 0, orphanFilesRemoved: 0 });
    expect(uidsOf(beforeSave, 'Doomed')).toHaveLength(2);
    expectWhole(beforeSave, join(dir.path, 'killed-before-save'));
    beforeSave.close();

    const afterSave = await killedAt('folders', 'after-save');
    expect(afterSave.repairedAtOpen).toEqual({ messagesDropped: 0, orphanFilesRemoved: 2 });
    expect(uidsOf(afterSave, 'Doomed')).toBeUndefined();
    expectWhole(afterSave, join(dir.path, 'killed-after-save'));
    afterSave.close();

    await runStep(base, 'folders', 'none');
  });

  it('keeps a folder with a new UIDVALIDITY whole across a kill before the save, and leaves nothing after it', async () => {
    const old = (() => {
      const cache = BridgeCache.open(join(base, 'cache'), key);
      const state = { ...cache.mailbox('Renewed')! };
      cache.close();
      return state;
    })();
    expect(old.messages).toHaveLength(2);
    await onGateway(async (proxy) => {
      await proxy.mailboxDelete('Renewed');
      await proxy.mailboxCreate('Renewed');
      await proxy.append('Renewed', plainMessage('renewed', 'After the new UIDVALIDITY'));
    });

    const beforeSave = await killedAt('mailbox:Renewed', 'before-save');
    expect(beforeSave.repairedAtOpen.messagesDropped).toBe(0);
    expect(beforeSave.mailbox('Renewed')).toMatchObject({ uidValidity: old.uidValidity });
    expect(uidsOf(beforeSave, 'Renewed')).toEqual(old.messages.map((m) => m.uid));
    expectWhole(beforeSave, join(dir.path, 'killed-before-save'));
    beforeSave.close();

    const afterSave = await killedAt('mailbox:Renewed', 'after-save');
    const renewed = afterSave.mailbox('Renewed')!;
    expect(renewed.uidValidity).not.toBe(old.uidValidity);
    expect(afterSave.repairedAtOpen.messagesDropped).toBe(0);
    // The old UIDVALIDITY's two files, not yet unlinked (and the new message's, when the
    // save came before its fetch).
    expect(afterSave.repairedAtOpen.orphanFilesRemoved).toBeGreaterThanOrEqual(2);
    expectWhole(afterSave, join(dir.path, 'killed-after-save'));
    afterSave.close();

    await runStep(base, 'mailbox:Renewed', 'none');
    const synced = BridgeCache.open(join(base, 'cache'), key);
    expect(synced.repairedAtOpen).toEqual({ messagesDropped: 0, orphanFilesRemoved: 0 });
    expect(synced.mailbox('Renewed')!.messages).toHaveLength(1);
    expectWhole(synced, base);
    synced.close();
  });
});
