/**
 * The bridge cache's state at rest (src/bridge/cache.ts over state-journal.ts and
 * state-ops.ts; src/bridge/README.md, "Cache at rest"): what a save writes (only what
 * changed), what a reopen gives back (flags, expunges, a new UIDVALIDITY, folders gone),
 * compaction, the earlier `state.bin` read once, message files the state does not list
 * removed at open, and a real process killed with SIGKILL while it saves and compacts.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BridgeCache, type CachedMailbox, type CachedMessage } from '../../src/bridge/cache.js';
import { BridgeError } from '../../src/bridge/errors.js';
import { writeSealed } from '../../src/bridge/sealed-file.js';
import {
  applyStep,
  expectedAfter,
  inboxOf,
  linesOf,
  stepOf,
  store,
} from '../helpers/bridge-cache-steps.js';
import { tempDir } from '../helpers/tmp.js';

const KEY = Buffer.alloc(32, 5);

let dir: ReturnType<typeof tempDir>;
beforeEach(() => {
  dir = tempDir('recrypt-cache-state-');
});
afterEach(() => dir.remove());

function mailbox(name: string, count: number): CachedMailbox {
  return {
    name,
    path: name,
    subscribed: true,
    uidValidity: 7,
    uidNext: count + 1,
    highestModseq: 1,
    messages: Array.from({ length: count }, (_, i) => ({
      uid: i + 1,
      flags: i % 2 === 0 ? ['\\Seen'] : [],
      internalDate: 1_700_000_000_000 + i,
      size: 20 + (i % 10),
      modseq: 1,
      kind: 'decrypted' as const,
    })),
  };
}

/** `box` added to `cache` with its message files, as the sync adds messages. */
function add(cache: BridgeCache, ...boxes: CachedMailbox[]): void {
  for (const box of boxes) {
    for (const m of box.messages) store(cache, box, m);
    cache.mailboxes.push(box);
  }
}

/** A flag change as local-mailbox.ts makes it: new flags, the next mod-sequence. */
function setFlags(box: CachedMailbox, message: CachedMessage, flags: string[]): void {
  message.flags = [...flags].sort();
  message.modseq = ++box.highestModseq;
}

function reopened(): BridgeCache {
  return BridgeCache.open(dir.path, KEY);
}

function summary(cache: BridgeCache): unknown {
  return cache.mailboxes.map((m) => ({ ...m, messages: m.messages.map((x) => ({ ...x })) }));
}

describe('bridge cache state', () => {
  it('gives back what was saved, and writes nothing when nothing changed', () => {
    const cache = BridgeCache.open(dir.path, KEY);
    add(cache, mailbox('INBOX', 3), { ...mailbox('Archive/2024', 2), specialUse: '\\Archive' });
    cache.mailboxes[0]!.upstreamModseq = 99;
    cache.saveNow();
    const bytes = cache.stateBytes;
    cache.saveNow();
    expect(cache.stateBytes).toBe(bytes);
    const expected = summary(cache);
    cache.close();
    const again = reopened();
    expect(summary(again)).toEqual(expected);
    again.close();
  });

  it('saves a flag change in a 5,000-message mailbox as a small record', () => {
    const cache = BridgeCache.open(dir.path, KEY);
    const box = mailbox('INBOX', 5000);
    add(cache, box);
    cache.saveNow();
    const before = cache.stateBytes;
    setFlags(box, box.messages[1234]!, ['\\Flagged', '$Important']);
    cache.saveNow();
    const growth = cache.stateBytes - before;
    // One record: the mailbox's settings and one message (a whole state is ~400 KiB).
    expect(growth).toBeGreaterThan(0);
    expect(growth).toBeLessThan(512);
    cache.close();
    const again = reopened();
    expect(again.mailbox('INBOX')!.messages[1234]!.flags).toEqual(['$Important', '\\Flagged']);
    expect(again.mailbox('INBOX')!.messages[1235]!.flags).toEqual([]);
    again.close();
  });

  it('saves expunges, a new UIDVALIDITY and folders removed or made again', () => {
    const cache = BridgeCache.open(dir.path, KEY);
    const inbox = mailbox('INBOX', 10);
    const old = mailbox('Old', 4);
    const again = mailbox('Again', 4);
    add(cache, inbox, old, again);
    cache.saveNow();
    // Expunge 3 and 4 (local-mailbox.ts: a new array, a new mod-sequence).
    inbox.messages = inbox.messages.filter((m) => m.uid !== 3 && m.uid !== 4);
    inbox.highestModseq += 1;
    // 'Old' gone on the gateway; 'Again' deleted and made anew (a new object, one message).
    cache.mailboxes.splice(cache.mailboxes.indexOf(old), 1);
    const fresh = mailbox('Again', 1);
    store(cache, fresh, fresh.messages[0]!);
    cache.mailboxes.splice(cache.mailboxes.indexOf(again), 1, fresh);
    cache.saveNow();
    const afterExpunge = BridgeCache.open(dir.path, KEY);
    expect(afterExpunge.mailbox('INBOX')!.messages.map((m) => m.uid)).toEqual([
      1, 2, 5, 6, 7, 8, 9, 10,
    ]);
    expect(afterExpunge.mailbox('Again')!.messages).toHaveLength(1);
    afterExpunge.close();
    // A new UIDVALIDITY in INBOX, then a message with a UID the old one had.
    inbox.messages = [];
    inbox.uidValidity = 8;
    inbox.highestModseq += 1;
    const newer = { ...mailbox('x', 1).messages[0]!, modseq: ++inbox.highestModseq };
    store(cache, inbox, newer);
    inbox.messages.push(newer);
    cache.saveNow();
    const expected = summary(cache);
    cache.close();
    const reopenedCache = reopened();
    expect(summary(reopenedCache)).toEqual(expected);
    expect(reopenedCache.mailbox('INBOX')!.messages.map((m) => m.uid)).toEqual([1]);
    expect(reopenedCache.mailbox('Old')).toBeUndefined();
    expect(reopenedCache.mailbox('Again')!.messages).toHaveLength(1);
    reopenedCache.close();
  });

  it('compacts once the journal outgrows the state, keeping it', () => {
    let cache = BridgeCache.open(dir.path, KEY);
    let box = mailbox('INBOX', 1000);
    add(cache, box);
    cache.saveNow();
    let largest = 0;
    for (let round = 0; round < 40; round++) {
      // Reopened halfway: the bound holds across restarts (the snapshot is the first batch).
      if (round === 20) {
        cache.close();
        cache = reopened();
        box = cache.mailbox('INBOX')!;
      }
      // Every message changed: ~80 KiB appended per save.
      for (const message of box.messages) setFlags(box, message, ['$round' + round]);
      cache.saveNow();
      largest = Math.max(largest, cache.stateBytes);
    }
    // Without compaction 40 saves would make ~3 MiB; the bound is twice the state + 1 MiB.
    const whole = cache.stateBytes;
    expect(largest).toBeLessThan(2 * 100 * 1024 + 1024 * 1024 + 100 * 1024);
    cache.compact();
    expect(cache.stateBytes).toBeLessThanOrEqual(whole);
    const expected = summary(cache);
    cache.close();
    const again = reopened();
    expect(summary(again)).toEqual(expected);
    expect(again.mailbox('INBOX')!.messages[999]!.flags).toEqual(['$round39']);
    again.close();
  });

  it('holds no plaintext of folder names or keywords, and opens with no other key', () => {
    const cache = BridgeCache.open(dir.path, KEY);
    const box = mailbox('Plaintext-Marker-Folder', 3);
    box.messages[0]!.flags = ['$Plaintext-Marker-Keyword'];
    add(cache, box);
    cache.saveNow();
    cache.close();
    const state = readFileSync(join(dir.path, 'state.log')).toString('latin1');
    expect(state).not.toContain('Plaintext-Marker');
    expect(readdirSync(dir.path).sort()).toEqual(['messages', 'state.log']);
    let error: unknown;
    try {
      BridgeCache.open(dir.path, Buffer.alloc(32, 6));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(BridgeError);
    expect((error as BridgeError).code).toBe('corrupt-cache');
  });

  it('drops at open the messages whose file is missing or short, for the sync to fetch again', () => {
    const cache = BridgeCache.open(dir.path, KEY);
    const box = mailbox('INBOX', 5);
    add(cache, box);
    box.upstreamModseq = 12;
    cache.saveNow();
    cache.close();
    // What a power loss can leave of files written without fsync: one gone, one short.
    const files = join(dir.path, 'messages', readdirSync(join(dir.path, 'messages'))[0]!);
    rmSync(join(files, '7.2'));
    writeFileSync(join(files, '7.4'), readFileSync(join(files, '7.4')).subarray(0, 10));
    const again = reopened();
    expect(again.mailbox('INBOX')!.messages.map((m) => m.uid)).toEqual([1, 3, 5]);
    expect(again.mailbox('INBOX')!.upstreamModseq).toBeUndefined();
    expect(existsSync(join(files, '7.4'))).toBe(false);
    expect(again.readMessage(again.mailbox('INBOX')!, 3)).toEqual(Buffer.alloc(22, 0x61));
    again.close();
    // Saved as such: the next open finds the same.
    const third = reopened();
    expect(third.mailbox('INBOX')!.messages.map((m) => m.uid)).toEqual([1, 3, 5]);
    third.close();
  });

  it("keeps an expunged message's file until the journal no longer lists it", () => {
    const cache = BridgeCache.open(dir.path, KEY);
    const box = mailbox('INBOX', 3);
    add(cache, box);
    cache.saveNow();
    const file = join(dir.path, 'messages', readdirSync(join(dir.path, 'messages'))[0]!, '7.2');
    box.messages = box.messages.filter((m) => m.uid !== 2);
    box.highestModseq++;
    cache.removeMessage(box, 2);
    // A crash here (nothing saved since): the journal still lists message 2, so its file
    // stays and it opens whole; the sync expunges it again.
    expect(existsSync(file)).toBe(true);
    const crashed = reopened();
    expect(crashed.mailbox('INBOX')!.messages.map((m) => m.uid)).toEqual([1, 2, 3]);
    expect(crashed.readMessage(crashed.mailbox('INBOX')!, 2)).not.toBeNull();
    crashed.close();
    cache.saveNow();
    expect(existsSync(file)).toBe(false);
    cache.close();
    expect(
      reopened()
        .mailbox('INBOX')!
        .messages.map((m) => m.uid),
    ).toEqual([1, 3]);
  });

  it('removes at open the message files the state does not list, as kills leave them', () => {
    const cache = BridgeCache.open(dir.path, KEY);
    const box = mailbox('INBOX', 5);
    add(cache, box);
    cache.saveNow();
    const messages = join(dir.path, 'messages');
    const inboxDir = join(messages, readdirSync(messages)[0]!);
    // Killed between a new message's file and the save that would list it.
    store(cache, box, { ...box.messages[0]!, uid: 6 });
    // Killed between a saved expunge and the unlink after it (the one removeMessage asks).
    box.messages = box.messages.filter((m) => m.uid !== 2);
    box.highestModseq++;
    cache.saveNow();
    // Killed during a rename (its new name's files written, the state still the old name),
    // and before a new UIDVALIDITY's save.
    store(cache, { ...box, name: 'Renamed' }, box.messages[0]!);
    store(cache, { ...box, uidValidity: 6 }, box.messages[0]!);
    // Killed while writing a file (its writer gone); and a file being written (a live pid).
    const gone = spawnSync(process.execPath, ['-e', '']).pid;
    writeFileSync(join(inboxDir, `7.7.tmp-${gone}`), 'cut short');
    const beingWritten = `7.8.tmp-${process.ppid}`;
    writeFileSync(join(inboxDir, beingWritten), 'in progress');
    // Not a name the cache writes: left alone.
    writeFileSync(join(inboxDir, '.DS_Store'), '');
    cache.close();
    expect(readdirSync(messages)).toHaveLength(2);
    expect(readdirSync(inboxDir)).toHaveLength(10);

    const again = reopened();
    expect(again.repairedAtOpen).toEqual({ messagesDropped: 0, orphanFilesRemoved: 5 });
    expect(readdirSync(messages)).toEqual([basename(inboxDir)]);
    expect(readdirSync(inboxDir).sort()).toEqual(
      ['.DS_Store', '7.1', '7.3', '7.4', '7.5', beingWritten].sort(),
    );
    const inbox = again.mailbox('INBOX')!;
    expect(inbox.messages.map((m) => m.uid)).toEqual([1, 3, 4, 5]);
    for (const m of inbox.messages)
      expect(again.readMessage(inbox, m.uid)).toEqual(Buffer.alloc(m.size, 0x61));
    again.close();
    const third = reopened();
    expect(third.repairedAtOpen.orphanFilesRemoved).toBe(0);
    third.close();
  });

  it("reads an earlier version's state.bin once and moves it to the journal", () => {
    const legacy = mailbox('INBOX', 3);
    writeSealed(
      join(dir.path, 'state.bin'),
      KEY,
      'state',
      Buffer.from(JSON.stringify({ version: 1, mailboxes: [legacy] })),
    );
    const cache = BridgeCache.open(dir.path, KEY);
    expect(summary(cache)).toEqual([legacy]);
    for (const m of cache.mailboxes[0]!.messages) store(cache, cache.mailboxes[0]!, m);
    cache.close();
    expect(existsSync(join(dir.path, 'state.bin'))).toBe(false);
    const again = reopened();
    expect(summary(again)).toEqual([legacy]);
    again.close();
  });

  it('opens after SIGKILL at any point of saving or compacting, at the last save or the one being written', async () => {
    const child = join(import.meta.dirname, '..', 'helpers', 'bridge-cache-child.ts');
    let previous = 0;
    for (const saves of [1, 7, 33, 61, 118]) {
      const proc = spawn(process.execPath, ['--import', 'tsx', child, dir.path], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let lastSaved = 0;
      let buffered = '';
      const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
      await new Promise<void>((resolve, reject) => {
        proc.on('exit', () => reject(new Error(`the child ended before ${saves} saves`)));
        proc.stdout.on('data', (chunk: Buffer) => {
          buffered += chunk.toString('utf8');
          const lines = buffered.split('\n');
          buffered = lines.pop()!;
          for (const line of lines) lastSaved = Number(line.slice('saved '.length));
          // Killed in the middle of what follows a save it reported.
          if (lastSaved >= previous + saves) {
            proc.kill('SIGKILL');
            resolve();
          }
        });
      });
      await exited;
      const cache = reopened();
      const inbox = inboxOf(cache);
      const step = stepOf(inbox);
      expect(step === lastSaved || step === lastSaved + 1).toBe(true);
      expect(linesOf(inbox)).toEqual(expectedAfter(step));
      // No file the state does not list is left (a new message's before its save, an
      // expunged one's before its unlink), and every listed message opens.
      const inboxDir = join(dir.path, 'messages', readdirSync(join(dir.path, 'messages'))[0]!);
      expect(readdirSync(inboxDir).sort()).toEqual(inbox.messages.map((m) => `42.${m.uid}`).sort());
      for (const m of inbox.messages) expect(cache.readMessage(inbox, m.uid)?.length).toBe(m.size);
      // And the reopened journal takes further saves.
      applyStep(cache, inbox, step + 1);
      cache.close();
      const next = reopened();
      expect(linesOf(inboxOf(next))).toEqual(expectedAfter(step + 1));
      previous = step + 1;
      next.close();
    }
  });
});
