/**
 * The bridge cache's state on disk as a sealed append-only journal (README.md, "Cache at
 * rest"): a change costs one small record appended, not the whole state rewritten.
 *
 *   file   = "RBJ1" ‖ file id (16 random bytes) ‖ record*
 *   record = length (u32 BE) ‖ seal(key, "state <file id> <index>", flag ‖ JSON ops)
 *
 * Every record is sealed on its own (sealed-file.ts: AES-256-GCM) with its file id and
 * its index as associated data, so a record moved to another position or spliced in from
 * another journal (or an older one) does not open. A save is one batch of records whose
 * last has flag 1: a batch is applied whole or not at all. Compaction rewrites the state
 * as a new file under a new id (written whole, then renamed over), so record 0 always
 * exists and must open: when it does not, the key is wrong or the file was altered.
 *
 * A kill -9 or a crash can leave a torn tail: a record reaching past the end of the file,
 * zero bytes, or a batch without its last record. That tail is dropped (the state is the
 * one of the previous save, which the next sync brings up to date; the gateway is the
 * source of truth) and cut off before anything is appended. A record that does not open
 * with more records after it is not a crash: the journal is reported as corrupt.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fdatasyncSync,
  ftruncateSync,
  openSync,
  readFileSync,
  statSync,
  writeSync,
} from 'node:fs';
import { writeFileAtomic } from '../config/atomic-file.js';
import { BridgeError } from './errors.js';
import { seal, unseal } from './sealed-file.js';

const MAGIC = Buffer.from('RBJ1', 'latin1');
const ID_BYTES = 16;
const HEADER_BYTES = MAGIC.length + ID_BYTES;
/** seal(): magic, nonce, tag. */
const SEAL_OVERHEAD = 4 + 12 + 16;
/** Records are cut at about this much plaintext, so none needs a large buffer to open. */
const RECORD_TARGET = 256 * 1024;
/** The most a record may claim when read (bounds what a damaged length can make us read). */
const MAX_RECORD = 16 * 1024 * 1024;
/** The most a journal may be when opened; compaction keeps it near twice the state. */
const MAX_FILE = 1024 * 1024 * 1024;
/** Compaction once the appended part outgrows the snapshot by this much. */
const COMPACT_SLACK = 1024 * 1024;
const END_OF_BATCH = 1;

function aad(id: Buffer, index: number): string {
  return `state ${id.toString('hex')} ${index}`;
}

/** The records of one batch: ops packed into records of about RECORD_TARGET plaintext bytes. */
function encodeBatch(id: Buffer, firstIndex: number, key: Uint8Array, ops: unknown[]): Buffer[] {
  const groups: string[][] = [[]];
  let bytes = 0;
  for (const op of ops) {
    const json = JSON.stringify(op);
    if (json.length + 16 > MAX_RECORD)
      throw new BridgeError('corrupt-cache', 'a cache state entry is too large to save');
    if (bytes > 0 && bytes + json.length > RECORD_TARGET) {
      groups.push([]);
      bytes = 0;
    }
    groups[groups.length - 1]!.push(json);
    bytes += json.length + 1;
  }
  return groups.map((group, i) => {
    const flag = i === groups.length - 1 ? END_OF_BATCH : 0;
    const plain = Buffer.concat([Buffer.of(flag), Buffer.from(`[${group.join(',')}]`, 'utf8')]);
    const sealed = seal(key, aad(id, firstIndex + i), plain);
    const length = Buffer.alloc(4);
    length.writeUInt32BE(sealed.length);
    return Buffer.concat([length, sealed]);
  });
}

function allZero(bytes: Buffer): boolean {
  for (const byte of bytes) if (byte !== 0) return false;
  return true;
}

export class StateJournal {
  private constructor(
    private readonly path: string,
    private readonly key: Uint8Array,
    private readonly id: Buffer,
    private fd: number,
    /** Index of the next record. */
    private records: number,
    /** Bytes of the file (where the next batch goes). */
    private bytes: number,
    /** Bytes of the file as compaction (or creation) wrote it. */
    private snapshotBytes: number,
  ) {}

  /** A new journal holding `ops` as its first batch, written whole and renamed over `path`. */
  static create(path: string, key: Uint8Array, ops: unknown[]): StateJournal {
    const id = randomBytes(ID_BYTES);
    const records = encodeBatch(id, 0, key, ops);
    const file = Buffer.concat([MAGIC, id, ...records]);
    writeFileAtomic(path, file, 0o600);
    const fd = openSync(path, 'r+');
    return new StateJournal(path, key, id, fd, records.length, file.length, file.length);
  }

  /**
   * Opens the journal at `path`, giving every complete batch's ops to `apply` in order;
   * null when there is no journal. Throws BridgeError('corrupt-cache') when it does not
   * open with `key` or was altered; a torn tail is cut off.
   */
  static open(path: string, key: Uint8Array, apply: (ops: unknown[]) => void): StateJournal | null {
    let size: number;
    try {
      size = statSync(path).size;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new BridgeError('corrupt-cache', `cannot read ${path}: ${String(error)}`);
    }
    if (size > MAX_FILE) throw new BridgeError('corrupt-cache', `${path} is too large`);
    const file = readFileSync(path);
    if (file.length < HEADER_BYTES || !file.subarray(0, MAGIC.length).equals(MAGIC))
      throw new BridgeError('corrupt-cache', `${path} is not a bridge state journal`);
    const id = Buffer.from(file.subarray(MAGIC.length, HEADER_BYTES));
    let offset = HEADER_BYTES;
    let index = 0;
    let pending: unknown[] = [];
    // Where the last complete batch ends: what is kept.
    let kept = { offset, index };
    // Where the first batch (what creation or compaction wrote) ends: the snapshot's size.
    let snapshot = 0;
    while (offset < file.length) {
      const plain = StateJournal.readRecord(file, offset, key, id, index);
      if (plain === null) {
        // Torn: cut short within its length field or its record, or the file's last record,
        // or zeros. Altering a length can make the rest read as torn: that is the earlier
        // state, as cutting the file would give; never a state that was not saved.
        const length = offset + 4 <= file.length ? file.readUInt32BE(offset) : 0;
        const torn =
          offset + 4 > file.length ||
          (length <= MAX_RECORD && offset + 4 + length >= file.length) ||
          allZero(file.subarray(offset));
        if (index === 0)
          throw new BridgeError('corrupt-cache', `${path} does not open with this cache key`);
        if (!torn)
          throw new BridgeError('corrupt-cache', `${path}: record ${index} was altered or moved`);
        break;
      }
      offset += 4 + file.readUInt32BE(offset);
      index += 1;
      let ops: unknown;
      try {
        ops = JSON.parse(plain.subarray(1).toString('utf8'));
      } catch {
        throw new BridgeError('corrupt-cache', `${path}: record ${index - 1} is not JSON`);
      }
      if (!Array.isArray(ops))
        throw new BridgeError('corrupt-cache', `${path}: record ${index - 1} has no entries`);
      pending = pending.length === 0 ? ops : pending.concat(ops);
      if (plain[0] === END_OF_BATCH) {
        apply(pending);
        pending = [];
        kept = { offset, index };
        if (snapshot === 0) snapshot = offset;
      }
    }
    if (kept.index === 0)
      throw new BridgeError('corrupt-cache', `${path} does not open with this cache key`);
    const fd = openSync(path, 'r+');
    try {
      if (kept.offset < file.length) {
        ftruncateSync(fd, kept.offset);
        fdatasyncSync(fd);
      }
    } catch (error) {
      closeSync(fd);
      throw error;
    }
    return new StateJournal(path, key, id, fd, kept.index, kept.offset, snapshot);
  }

  /** The plaintext of the record at `offset`; null when it is cut short or does not open. */
  private static readRecord(
    file: Buffer,
    offset: number,
    key: Uint8Array,
    id: Buffer,
    index: number,
  ): Buffer | null {
    if (offset + 4 > file.length) return null;
    const length = file.readUInt32BE(offset);
    if (length < SEAL_OVERHEAD + 1 || length > MAX_RECORD || offset + 4 + length > file.length)
      return null;
    const plain = unseal(key, aad(id, index), file.subarray(offset + 4, offset + 4 + length));
    if (plain === null || plain.length < 1 || plain[0]! > END_OF_BATCH) return null;
    return plain;
  }

  /** Bytes in the file. */
  get size(): number {
    return this.bytes;
  }

  /** True once what was appended since the last compaction outgrows the compacted state. */
  get wantsCompaction(): boolean {
    return this.bytes - this.snapshotBytes > this.snapshotBytes + COMPACT_SLACK;
  }

  /**
   * Appends `ops` as one batch and syncs it to disk. On a failed write the file is cut
   * back, so a later batch never follows a torn one.
   */
  append(ops: unknown[]): void {
    if (ops.length === 0) return;
    const records = encodeBatch(this.id, this.records, this.key, ops);
    const batch = Buffer.concat(records);
    try {
      let written = 0;
      while (written < batch.length)
        written += writeSync(this.fd, batch, written, batch.length - written, this.bytes + written);
      fdatasyncSync(this.fd);
    } catch (error) {
      try {
        ftruncateSync(this.fd, this.bytes);
      } catch {
        // The torn batch stays; the next open drops it (it is the file's last).
      }
      throw new BridgeError(
        'corrupt-cache',
        `cannot save the bridge state: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
      );
    }
    this.records += records.length;
    this.bytes += batch.length;
  }

  /** Replaces the file by one holding only `ops` (the whole state), under a new id. */
  compact(ops: unknown[]): StateJournal {
    const next = StateJournal.create(this.path, this.key, ops);
    this.close();
    return next;
  }

  close(): void {
    if (this.fd < 0) return;
    closeSync(this.fd);
    this.fd = -1;
  }
}
