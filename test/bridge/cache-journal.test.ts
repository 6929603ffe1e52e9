/**
 * The bridge state journal's file format (src/bridge/state-journal.ts; src/bridge/README.md,
 * "Cache at rest") against damaged files: a wrong key, an altered, moved or spliced
 * record, a torn tail at every byte, zero bytes after a crash, a batch cut in the middle.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/bridge/errors.js';
import { StateJournal } from '../../src/bridge/state-journal.js';
import { tempDir } from '../helpers/tmp.js';

const KEY = Buffer.alloc(32, 7);
const HEADER = 4 + 16;

let dir: ReturnType<typeof tempDir>;
let path: string;
beforeEach(() => {
  dir = tempDir('recrypt-journal-');
  path = join(dir.path, 'state.log');
});
afterEach(() => dir.remove());

function read(file = path, key: Buffer = KEY): { batches: unknown[][]; journal: StateJournal } {
  const batches: unknown[][] = [];
  const journal = StateJournal.open(file, key, (ops) => batches.push(ops));
  if (journal === null) throw new Error('no journal');
  return { batches, journal };
}

function batchesOf(file = path, key: Buffer = KEY): unknown[][] {
  const { batches, journal } = read(file, key);
  journal.close();
  return batches;
}

/** Offsets of the records of a journal's bytes (after the header). */
function recordOffsets(bytes: Buffer): number[] {
  const offsets: number[] = [];
  for (let at = HEADER; at < bytes.length; at += 4 + bytes.readUInt32BE(at)) offsets.push(at);
  return offsets;
}

/** A journal with a first batch and three appended, one entry each. */
function fourBatches(): void {
  const journal = StateJournal.create(path, KEY, [['first']]);
  for (const n of [1, 2, 3]) journal.append([['batch', n]]);
  journal.close();
}

function expectCorrupt(fn: () => unknown, message: RegExp): void {
  let error: unknown;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(BridgeError);
  expect((error as BridgeError).code).toBe('corrupt-cache');
  expect((error as Error).message).toMatch(message);
}

describe('state journal', () => {
  it('gives back every batch in order, and none when there is no file', () => {
    expect(StateJournal.open(join(dir.path, 'none.log'), KEY, () => undefined)).toBeNull();
    fourBatches();
    expect(batchesOf()).toEqual([[['first']], [['batch', 1]], [['batch', 2]], [['batch', 3]]]);
    const { journal } = read();
    journal.append([['batch', 4]]);
    journal.close();
    expect(batchesOf()).toHaveLength(5);
  });

  it('holds no plaintext', () => {
    const journal = StateJournal.create(path, KEY, [['box', 'Secret-Folder-Name', {}]]);
    journal.append([['m', 'Secret-Folder-Name', 1, ['$SecretKeyword']]]);
    journal.close();
    const bytes = readFileSync(path).toString('latin1');
    expect(bytes).not.toContain('Secret');
    expect(bytes).not.toContain('box');
  });

  it('does not open with a wrong key', () => {
    fourBatches();
    expectCorrupt(() => batchesOf(path, Buffer.alloc(32, 8)), /does not open with this cache key/);
  });

  it('refuses a file that is not a journal, or whose first record does not open', () => {
    writeFileSync(path, 'not a journal at all');
    expectCorrupt(() => batchesOf(), /not a bridge state journal/);
    fourBatches();
    const bytes = readFileSync(path);
    bytes[HEADER + 10]! ^= 1;
    writeFileSync(path, bytes);
    expectCorrupt(() => batchesOf(), /does not open/);
  });

  it('refuses an altered record in the middle, bit by bit, or reads it as the file cut there', () => {
    fourBatches();
    const original = readFileSync(path);
    const [, second, third] = recordOffsets(original);
    const outcomes = { refused: 0, cut: 0 };
    for (let at = second!; at < third!; at++) {
      for (const bit of [0x01, 0x40]) {
        const bytes = Buffer.from(original);
        bytes[at]! ^= bit;
        writeFileSync(path, bytes);
        let batches: unknown[][] | undefined;
        try {
          batches = batchesOf();
        } catch (error) {
          expect((error as BridgeError).code).toBe('corrupt-cache');
          outcomes.refused += 1;
          continue;
        }
        // Only a length made to reach past the end reads as a torn write: the state is
        // then the one before that record (as if the file had been cut), never another.
        expect(at).toBeLessThan(second! + 4);
        expect(batches).toEqual([[['first']]]);
        outcomes.cut += 1;
      }
    }
    expect(outcomes.cut).toBeGreaterThan(0);
    expect(outcomes.refused).toBeGreaterThan(2 * (third! - second! - 4));
  });

  it('refuses records swapped in place', () => {
    fourBatches();
    const bytes = readFileSync(path);
    const [, a, b, c] = recordOffsets(bytes);
    // Same-length records (one entry each, one digit): swap the second and the third.
    const first = bytes.subarray(a!, b!);
    const second = bytes.subarray(b!, c!);
    expect(first.length).toBe(second.length);
    writeFileSync(path, Buffer.concat([bytes.subarray(0, a!), second, first, bytes.subarray(c!)]));
    expectCorrupt(() => batchesOf(), /altered or moved/);
  });

  it('refuses a record spliced in from another journal with the same key', () => {
    fourBatches();
    const other = join(dir.path, 'other.log');
    const journal = StateJournal.create(other, KEY, [['first']]);
    journal.append([['batch', 9]]);
    journal.close();
    const mine = readFileSync(path);
    const theirs = readFileSync(other);
    const [, mineSecond, mineThird] = recordOffsets(mine);
    const [, theirsSecond] = recordOffsets(theirs);
    // Their record 1 in place of my record 1: same index, other file id.
    writeFileSync(
      path,
      Buffer.concat([
        mine.subarray(0, mineSecond!),
        theirs.subarray(theirsSecond!),
        mine.subarray(mineThird!),
      ]),
    );
    expectCorrupt(() => batchesOf(), /altered or moved/);
  });

  it('drops a torn tail at every byte, cuts it off, and appends after it', () => {
    fourBatches();
    const original = readFileSync(path);
    const offsets = recordOffsets(original);
    const lastStart = offsets[offsets.length - 1]!;
    for (let cut = lastStart; cut < original.length; cut++) {
      writeFileSync(path, original.subarray(0, cut));
      const { batches, journal } = read();
      expect(batches).toEqual([[['first']], [['batch', 1]], [['batch', 2]]]);
      expect(statSync(path).size).toBe(lastStart);
      journal.append([['after', cut]]);
      journal.close();
      expect(batchesOf()).toEqual([[['first']], [['batch', 1]], [['batch', 2]], [['after', cut]]]);
    }
  });

  it('drops zero bytes left after the last record by a crash', () => {
    fourBatches();
    const size = statSync(path).size;
    writeFileSync(path, Buffer.concat([readFileSync(path), Buffer.alloc(4096)]));
    const { batches, journal } = read();
    journal.close();
    expect(batches).toHaveLength(4);
    expect(statSync(path).size).toBe(size);
  });

  it('applies a batch of many records whole or not at all', () => {
    const journal = StateJournal.create(path, KEY, [['first']]);
    // About 1 MiB of entries: several records of one batch.
    const big = Array.from({ length: 4000 }, (_, i) => ['m', randomBytes(128).toString('hex'), i]);
    journal.append(big);
    journal.close();
    const whole = readFileSync(path);
    const offsets = recordOffsets(whole);
    expect(offsets.length).toBeGreaterThan(3);
    expect(batchesOf()[1]).toEqual(big);
    // Cut after the first records of the batch: none of it is applied, and it is cut off.
    writeFileSync(path, whole.subarray(0, offsets[3]!));
    const { batches, journal: reopened } = read();
    reopened.close();
    expect(batches).toEqual([[['first']]]);
    expect(statSync(path).size).toBe(offsets[1]);
  });

  it('compacts into a new file whose records do not mix with the old', () => {
    fourBatches();
    const old = readFileSync(path);
    const { journal } = read();
    const compacted = journal.compact([['whole', 'state']]);
    compacted.close();
    expect(batchesOf()).toEqual([[['whole', 'state']]]);
    // An old record appended to the new file is not taken as the new file's record 1.
    const [, oldSecond, oldThird] = recordOffsets(old);
    writeFileSync(
      path,
      Buffer.concat([
        readFileSync(path),
        old.subarray(oldSecond!, oldThird!),
        old.subarray(oldSecond!, oldThird!),
      ]),
    );
    expectCorrupt(() => batchesOf(), /altered or moved/);
  });
});
