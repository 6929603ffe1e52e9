/**
 * Run by test/bridge/cache-state.test.ts as its own process, to be killed with SIGKILL
 * at any point: opens the bridge cache in argv[2], carries on the steps of
 * bridge-cache-steps.ts from where the cache is, saves after every step (compacting
 * every 20th) and prints `saved <step>` once each save has returned.
 */
import { BridgeCache } from '../../src/bridge/cache.js';
import { applyStep, inboxOf, stepOf } from './bridge-cache-steps.js';

const cache = BridgeCache.open(process.argv[2]!, Buffer.alloc(32, 5));
const inbox = inboxOf(cache);
for (let s = stepOf(inbox) + 1; s <= 100_000; s++) {
  applyStep(cache, inbox, s);
  if (s % 20 === 0) cache.compact();
  else cache.saveNow();
  process.stdout.write(`saved ${s}\n`);
}
