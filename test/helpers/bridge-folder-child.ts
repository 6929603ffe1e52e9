/**
 * Run by test/bridge/folder-files-crash.test.ts as its own process, to be killed with
 * SIGKILL at a point it names: opens the bridge data directory argv[2] (the passphrase
 * in RECRYPT_BRIDGE_PASSPHRASE, the test scrypt cost), runs one step of the real sync
 * against the gateway its account names (argv[3]: `folders`, the folder list; or
 * `mailbox:<name>`, that mailbox), then saves the state. argv[4] says where it stops: at
 * the first state journal write, `before-save` prints `paused` before it and
 * `after-save` after it, and either then waits to be killed; `none` closes and exits.
 *
 * The pause wraps the journal's own methods in this process only: it is where a kill
 * lands that nothing else makes repeatable (between a save and the unlinks after it).
 */
import { writeSync } from 'node:fs';
import { join } from 'node:path';
import { decryptKeyOf, loadAccount } from '../../src/bridge/account.js';
import { BridgeCache } from '../../src/bridge/cache.js';
import { openCacheKey } from '../../src/bridge/cache-key.js';
import { StateJournal } from '../../src/bridge/state-journal.js';
import { Sync } from '../../src/bridge/sync.js';
import { Upstream } from '../../src/bridge/upstream.js';

const [dataDir, step, pause] = process.argv.slice(2) as [string, string, string];

/** Blocks this process for good (its event loop too): the test kills it here. */
function paused(): never {
  writeSync(1, 'paused\n');
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  throw new Error('not reached');
}

if (pause !== 'none') {
  for (const method of ['append', 'compact'] as const) {
    const original = StateJournal.prototype[method] as (...args: unknown[]) => unknown;
    (StateJournal.prototype as unknown as Record<string, unknown>)[method] = function (
      this: StateJournal,
      ...args: unknown[]
    ) {
      if (pause === 'before-save') paused();
      const result = original.apply(this, args);
      paused();
      return result;
    };
  }
}

const key = await openCacheKey(
  join(dataDir, 'key.json'),
  process.env['RECRYPT_BRIDGE_PASSPHRASE']!,
);
const account = loadAccount(dataDir, key)!;
const cache = BridgeCache.open(join(dataDir, 'cache'), key);
const upstream = new Upstream(account.upstream);
const quiet = { info: () => undefined, warn: () => undefined };
const sync = new Sync(cache, upstream, decryptKeyOf(account), quiet);
if (step === 'folders') await sync.syncFolders();
else await sync.syncMailbox(sync.mailboxes.get(step.slice('mailbox:'.length))!);
cache.saveNow();
await upstream.close();
cache.close();
writeSync(1, 'done\n');
