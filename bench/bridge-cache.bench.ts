/**
 * The bridge cache's state at 50,000 messages (BRIDGE_CACHE_MESSAGES), the cache alone:
 * no gateway is needed to measure what the state costs (src/bridge/README.md, "Cache at
 * rest"), and without one the figures are not mixed with fetching and decrypting.
 *  - memory: heap bytes per message of the cached records as the sync makes them, as a
 *    reopened journal gives them (flag lists shared), and of the local view's record
 *    list (record-list.ts) over them (no UID map: the messages ascend by UID, a binary search);
 *  - the cache writes of a first sync (a 1 KiB message file per message, a state save per
 *    50, as the sync's batches);
 *  - one flag change saved, side by side (harness.ts): a journal append against the whole
 *    state sealed and written, which every save cost before the journal; and the local
 *    view's record list after it: one record replaced (now) against the list rebuilt (before);
 *  - a message file written with an fsync (before) and without (now), side by side;
 *  - a save when nothing changed (a sync round that CONDSTORE skipped) and a reopen
 *    (which checks every message file's size).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { BridgeCache, type CachedMailbox, type CachedMessage } from '../src/bridge/cache.js';
import { LocalMailbox, type UpstreamWrites } from '../src/bridge/local-mailbox.js';
import { toRecord } from '../src/bridge/record-list.js';
import { writeSealed, writeSealedUnsynced } from '../src/bridge/sealed-file.js';
import { tempDir } from '../test/helpers/tmp.js';
import { compare, formatResults, ratio, timeMs } from './harness.js';

const KEY = Buffer.alloc(32, 9);
const BATCH = 50;
/** Message files are written as the sync writes them; 1 KiB each keeps 50,000 on disk small. */
const BODY = Buffer.alloc(1024, 0x61);

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function heap(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** A message as the sync makes it (sync.ts: its own sorted copy of the flags). */
function fetched(uid: number, modseq: number): CachedMessage {
  return {
    uid,
    flags: uid % 3 === 0 ? ['\\Seen'] : uid % 7 === 0 ? ['$Label1', '\\Seen'] : ['\\Seen'],
    internalDate: 1_700_000_000_000 + uid * 1000,
    size: BODY.length,
    modseq,
    kind: 'decrypted',
  };
}

function inbox(): CachedMailbox {
  return {
    name: 'INBOX',
    path: 'INBOX',
    subscribed: true,
    uidValidity: 1,
    uidNext: 1,
    highestModseq: 1,
    messages: [],
  };
}

const NO_UPSTREAM: UpstreamWrites = {
  setFlags: () => Promise.resolve(),
  expunge: () => Promise.resolve(),
  copy: () => Promise.resolve(new Map()),
};

const perMessage = (bytes: number, n: number): string => `${(bytes / n).toFixed(0)} B/message`;

export async function run(): Promise<void> {
  const count = Number(process.env['BRIDGE_CACHE_MESSAGES'] ?? 50_000);
  const dir = tempDir('recrypt-bench-bridge-cache-');
  try {
    const cacheDir = join(dir.path, 'cache');
    mkdirSync(cacheDir);

    // The first sync's state writes: messages added 50 at a time, a save after each batch.
    // No plaintext LRU: the heap figures are those of the records alone.
    const cache = BridgeCache.open(cacheDir, KEY, 0);
    const box = inbox();
    cache.mailboxes.push(box);
    const heapBefore = heap();
    let saves = 0;
    const cpuBefore = process.cpuUsage();
    const wall = await timeMs(() => {
      for (let uid = 1; uid <= count; uid++) {
        cache.writeMessage(box, uid, BODY);
        box.messages.push(fetched(uid, ++box.highestModseq));
        box.uidNext = uid + 1;
        if (uid % BATCH === 0 || uid === count) {
          cache.saveNow();
          saves += 1;
        }
      }
    });
    const cpu = process.cpuUsage(cpuBefore);
    console.log(
      `first sync's cache writes, ${count} message files and ${saves} state saves: ${wall.toFixed(0)} ms wall, ` +
        `${((cpu.user + cpu.system) / 1000).toFixed(0)} ms CPU, journal ${(cache.stateBytes / 1048576).toFixed(1)} MiB`,
    );
    const heapSynced = heap();
    console.log(
      `records as synced (flag lists shared once saved): ${perMessage(heapSynced - heapBefore, count)}`,
    );

    // The local view over them: records() for the IMAP layer (messages found by binary search).
    const local = new LocalMailbox(box, cache, NO_UPSTREAM);
    local.records();
    local.message(1);
    const heapLocal = heap();
    console.log(
      `local view's record list (record-list.ts): ${perMessage(heapLocal - heapSynced, count)}`,
    );

    // A flag change saved, side by side with the whole state written as before the journal.
    let flip = 0;
    const change = (): void => {
      const message = box.messages[(flip++ * 7919) % count]!;
      message.flags = flip % 2 === 0 ? ['\\Seen'] : ['\\Flagged', '\\Seen'];
      message.modseq = ++box.highestModseq;
    };
    const results = await compare(
      [
        {
          name: 'flag change: journal append',
          run: () =>
            timeMs(() => {
              change();
              cache.saveNow();
            }),
        },
        {
          name: 'flag change: whole state rewritten',
          run: () =>
            timeMs(() => {
              change();
              writeSealed(
                join(dir.path, 'whole-state.bin'),
                KEY,
                'state',
                Buffer.from(JSON.stringify({ version: 1, mailboxes: cache.mailboxes })),
              );
            }),
        },
        {
          name: "flag change: local view's record replaced (now)",
          run: () =>
            timeMs(() => {
              const message = local.message(((flip++ * 7919) % count) + 1)!;
              local.updateFlags(message, flip % 2 === 0 ? ['\\Seen'] : ['\\Answered'], null);
              local.records();
            }),
        },
        {
          // What local-mailbox.ts did before record-list.ts: the whole list made again.
          name: "flag change: local view's records rebuilt whole (before)",
          run: () =>
            timeMs(() => {
              const message = local.message(((flip++ * 7919) % count) + 1)!;
              local.updateFlags(message, flip % 2 === 0 ? ['\\Seen'] : ['\\Answered'], null);
              box.messages.map(toRecord);
            }),
        },
        {
          name: 'message file written, fsynced (before)',
          run: () => timeMs(() => writeSealed(join(dir.path, 'synced.msg'), KEY, 'message', BODY)),
        },
        {
          name: 'message file written, not fsynced (now)',
          run: () =>
            timeMs(() => writeSealedUnsynced(join(dir.path, 'unsynced.msg'), KEY, 'message', BODY)),
        },
        {
          name: 'save with nothing changed',
          run: () => {
            // What the other paths changed (the local view's change is saved 200 ms later).
            cache.saveNow();
            return timeMs(() => cache.saveNow());
          },
        },
      ],
      { rounds: 9, warmup: 2 },
    );
    console.log(`at ${count} messages, wall time per operation:`);
    console.log(formatResults(results, 'ms', 3));
    console.log(
      `  journal / whole state: ${ratio(results, 'flag change: journal append', 'flag change: whole state rewritten')}`,
    );
    console.log(
      `  record replaced / list rebuilt: ${ratio(results, "flag change: local view's record replaced (now)", "flag change: local view's records rebuilt whole (before)")}`,
    );

    cache.close();
    const heapClosed = heap();
    let reopened: BridgeCache | undefined;
    const openMs = await timeMs(() => (reopened = BridgeCache.open(cacheDir, KEY, 0)));
    const heapReopened = heap();
    if (reopened!.mailbox('INBOX')!.messages.length !== count)
      throw new Error('the reopened cache lost messages');
    console.log(
      `reopen: ${openMs.toFixed(0)} ms, journal ${(reopened!.stateBytes / 1048576).toFixed(1)} MiB, ` +
        `records ${perMessage(heapReopened - heapClosed, count)} (the closed cache's still held)`,
    );
    reopened!.close();
  } finally {
    dir.remove();
  }
}
