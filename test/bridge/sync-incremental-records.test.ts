/**
 * The local view's records kept in step change by change (src/bridge/record-list.ts,
 * README.md "Sync") rather than rebuilt: after any run of sync-side changes (new
 * messages, flag changes, expunges of one or of many), `records()` equals the list
 * rebuilt from the cached messages, a list handed out earlier is never changed under its
 * holder (src/store/README.md, "Contract for the protocol layer"), and the state journal
 * (which now sees the messages array edited in place) reopens to the same messages.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BridgeCache, type CachedMailbox, type CachedMessage } from '../../src/bridge/cache.js';
import { LocalMailbox, type UpstreamWrites } from '../../src/bridge/local-mailbox.js';
import { removeUids, searchUid, toRecord } from '../../src/bridge/record-list.js';
import { tempDir } from '../helpers/tmp.js';

const KEY = Buffer.alloc(32, 7);
const dir = tempDir('recrypt-bridge-records-');
afterAll(() => dir.remove());

/** Only the sync's side is exercised: nothing here goes to a gateway. */
const NO_GATEWAY: UpstreamWrites = {
  setFlags: () => Promise.reject(new Error('not used')),
  expunge: () => Promise.reject(new Error('not used')),
  copy: () => Promise.reject(new Error('not used')),
};

/** A small seeded generator (mulberry32): a failing sequence can be run again. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FLAG_SETS = [[], ['\\Seen'], ['\\Flagged', '\\Seen'], ['$Label1'], ['\\Answered']];

function message(uid: number): CachedMessage {
  return {
    uid,
    flags: [],
    internalDate: 1_700_000_000_000 + uid * 1000,
    // The plaintext's length: an open drops a message whose file does not match it (cache.ts).
    size: 1,
    modseq: 0,
    kind: 'decrypted',
  };
}

const plain = (list: unknown): string => JSON.stringify(list);

describe('the local view’s records, kept in step', () => {
  it('search and remove by UID, a few spliced or many in one pass', () => {
    const list = [2, 4, 6, 8, 10].map((uid) => ({ uid }));
    expect(searchUid(list, 6)).toBe(2);
    expect(searchUid(list, 1)).toBe(-1);
    expect(searchUid(list, 7)).toBe(-4);
    expect(searchUid(list, 11)).toBe(-6);
    const many = Array.from({ length: 100 }, (_, i) => ({ uid: i + 1 }));
    expect(removeUids(many, new Set([50, 3, 999]))).toEqual([3, 50]);
    expect(many).toHaveLength(98);
    const gone = new Set(Array.from({ length: 60 }, (_, i) => i * 2 + 1));
    const removed = removeUids(many, gone);
    expect(removed).toEqual([...gone].filter((uid) => uid !== 3 && uid <= 100));
    expect(many.map((m) => m.uid)).toEqual(
      Array.from({ length: 100 }, (_, i) => i + 1).filter((uid) => uid !== 50 && uid % 2 === 0),
    );
  });

  it('equal the rebuilt list after every change, never change a list handed out, and save as before', () => {
    const cacheDir = join(dir.path, 'cache');
    mkdirSync(cacheDir);
    const cache = BridgeCache.open(cacheDir, KEY, 0);
    const state: CachedMailbox = {
      name: 'INBOX',
      path: 'INBOX',
      subscribed: true,
      uidValidity: 1,
      uidNext: 1,
      highestModseq: 1,
      messages: [],
    };
    cache.mailboxes.push(state);
    const local = new LocalMailbox(state, cache, NO_GATEWAY);
    const next = random(18);
    const pick = (): CachedMessage | undefined =>
      state.messages[Math.floor(next() * state.messages.length)];
    const handedOut: Array<{ list: unknown[]; then: string }> = [];
    let uid = 0;
    for (let step = 0; step < 3000; step++) {
      const roll = next();
      if (roll < 0.35 || state.messages.length < 5) {
        // New mail (the highest UID), or now and then one put back below it.
        uid += 1 + Math.floor(next() * 3);
        const back = next() < 0.1 ? uid - 1 : uid;
        if (local.message(back) === undefined) local.add(message(back), Buffer.from('x'));
      } else if (roll < 0.8) {
        const target = pick()!;
        local.updateFlags(target, FLAG_SETS[Math.floor(next() * FLAG_SETS.length)]!, null);
      } else if (roll < 0.95) {
        local.remove([pick()!.uid, pick()!.uid], null);
      } else {
        // Many at once: the compacting pass.
        local.remove(
          state.messages.filter(() => next() < 0.3).map((m) => m.uid),
          null,
        );
      }
      if (next() < 0.3) {
        const list = local.records();
        handedOut.push({ list, then: plain(list) });
      }
      if (step % 50 === 0 || step === 2999) {
        expect(plain(local.records())).toBe(plain(state.messages.map(toRecord)));
        for (const m of state.messages) expect(local.message(m.uid)).toBe(m);
      }
      if (step % 500 === 0) cache.saveNow();
    }
    expect(plain(local.records())).toBe(plain(state.messages.map(toRecord)));
    const uids = state.messages.map((m) => m.uid);
    expect(uids).toEqual([...uids].sort((a, b) => a - b));
    for (const { list, then } of handedOut) expect(plain(list)).toBe(then);

    cache.saveNow();
    const kept = plain(state.messages.map(toRecord));
    cache.close();
    const reopened = BridgeCache.open(cacheDir, KEY, 0);
    expect(plain(reopened.mailbox('INBOX')!.messages.map(toRecord))).toBe(kept);
    reopened.close();
  });
});
