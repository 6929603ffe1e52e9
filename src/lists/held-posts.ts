/**
 * Posts held for a moderated list's owner (docs/lists.md "Moderation"), on the
 * gateway's data directory: `<dataDir>/held/<list>/<id>.p7m` is the post exactly as the
 * MX would deliver it (S/MIME to the list group: the gateway cannot read it) and
 * `<id>.json` its record (envelope sender, size, time received, digest). Both are written
 * to a temp file, fsynced and renamed, and the directory fsynced, before `hold` resolves;
 * the record is written last, so a post exists once its record does. A record that does
 * not parse, or whose message file is missing or differs, is skipped and logged.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { HeldPost, HeldPostStore } from './ports.js';

/** 128 random bits in hex: safe in a URL and a file name, and never taken for a CLI option. */
const ID_PATTERN = /^[0-9a-f]{32}$/;
const RECORD = '.json';
const MESSAGE = '.p7m';

export class HeldPostIdError extends Error {
  override readonly name = 'HeldPostIdError';
  constructor() {
    super('malformed held post id');
  }
}

export function isHeldPostId(id: string): boolean {
  return ID_PATTERN.test(id);
}

/**
 * The directory name for a list: the lower-cased address with every byte outside
 * [a-z0-9@._+-] (and a leading dot) written %XX, so that it is one path component that
 * names no other list; a name that would be too long for a file system is a digest.
 */
export function listDirectoryName(list: string): string {
  const address = list.trim().toLowerCase();
  if (address === '') throw new RangeError('list: empty address');
  let name = '';
  for (const byte of Buffer.from(address, 'utf8')) {
    const char = String.fromCharCode(byte);
    const plain = /^[a-z0-9@._+-]$/.test(char) && !(name === '' && char === '.');
    name += plain ? char : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  // '=' is always escaped above, so a digest name cannot collide with an escaped one.
  return name.length <= 200 ? name : `=${createHash('sha256').update(address).digest('base64url')}`;
}

/** A held post's record as either store keeps it (JSON beside or with the message). */
export interface StoredRecord extends HeldPost {
  sha256: string;
  /** Orders posts received in the same millisecond by this process. */
  sequence: number;
}

export function parseRecord(text: string, id: string, list: string): StoredRecord | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  const r = value as Partial<StoredRecord> | null;
  const ok =
    typeof r === 'object' &&
    r !== null &&
    r.id === id &&
    r.list === list &&
    typeof r.mailFrom === 'string' &&
    Number.isSafeInteger(r.bytes) &&
    Number.isSafeInteger(r.received) &&
    Number.isSafeInteger(r.sequence) &&
    typeof r.sha256 === 'string';
  return ok ? (r as StoredRecord) : null;
}

export const publicPost = (r: StoredRecord): HeldPost => ({
  id: r.id,
  list: r.list,
  mailFrom: r.mailFrom,
  bytes: r.bytes,
  received: r.received,
});

async function syncDirectory(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes `data` to `path` by way of a fsynced temp file in the same directory. */
async function writeDurably(path: string, temp: string, data: Uint8Array | string): Promise<void> {
  const handle = await open(temp, 'wx', 0o600);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, path);
}

async function unlinkIfPresent(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

export interface FileHeldPostStoreOptions {
  dataDir: string;
  logger?: Logger;
  clock?: () => number;
}

export class FileHeldPostStore implements HeldPostStore {
  private readonly root: string;
  private readonly clock: () => number;
  private sequence = 0;

  constructor(private readonly options: FileHeldPostStoreOptions) {
    this.root = join(options.dataDir, 'held');
    this.clock = options.clock ?? Date.now;
  }

  private directoryOf(list: string): string {
    return join(this.root, listDirectoryName(list));
  }

  private pathsOf(list: string, id: string): { record: string; message: string } {
    if (!isHeldPostId(id)) throw new HeldPostIdError();
    const dir = this.directoryOf(list);
    return { record: join(dir, id + RECORD), message: join(dir, id + MESSAGE) };
  }

  async hold(list: string, mailFrom: string, ciphertext: Uint8Array): Promise<HeldPost> {
    const address = list.trim().toLowerCase();
    const dir = this.directoryOf(address);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const id = randomBytes(16).toString('hex');
    const paths = this.pathsOf(address, id);
    const record: StoredRecord = {
      id,
      list: address,
      mailFrom,
      bytes: ciphertext.length,
      received: this.clock(),
      sequence: this.sequence++,
      sha256: createHash('sha256').update(ciphertext).digest('hex'),
    };
    const temp = (suffix: string) => join(dir, `.${id}${suffix}.tmp`);
    try {
      await writeDurably(paths.message, temp(MESSAGE), ciphertext);
      await writeDurably(paths.record, temp(RECORD), JSON.stringify(record));
      await syncDirectory(dir);
    } catch (error) {
      await Promise.all(
        [temp(MESSAGE), temp(RECORD), paths.message, paths.record].map((p) =>
          unlinkIfPresent(p).catch(() => undefined),
        ),
      );
      throw error;
    }
    return publicPost(record);
  }

  async list(list: string): Promise<HeldPost[]> {
    const address = list.trim().toLowerCase();
    const dir = this.directoryOf(address);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const records: StoredRecord[] = [];
    for (const name of names) {
      if (!name.endsWith(RECORD) || name.startsWith('.')) continue;
      const id = name.slice(0, -RECORD.length);
      if (!isHeldPostId(id)) {
        this.skipped(address, name, 'not a held post id');
        continue;
      }
      const record = await this.readRecord(address, id);
      if (record && (await this.messageMatches(address, record))) records.push(record);
    }
    records.sort((a, b) => a.received - b.received || a.sequence - b.sequence);
    return records.map(publicPost);
  }

  async get(list: string, id: string): Promise<{ post: HeldPost; message: Buffer } | null> {
    const address = list.trim().toLowerCase();
    const paths = this.pathsOf(address, id);
    const record = await this.readRecord(address, id);
    if (!record) return null;
    let message: Buffer;
    try {
      message = await readFile(paths.message);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      this.skipped(address, id + MESSAGE, 'message file missing');
      return null;
    }
    const digest = createHash('sha256').update(message).digest('hex');
    if (message.length !== record.bytes || digest !== record.sha256) {
      this.skipped(address, id + MESSAGE, 'message file differs from its record');
      return null;
    }
    return { post: publicPost(record), message };
  }

  async remove(list: string, id: string): Promise<void> {
    const address = list.trim().toLowerCase();
    const paths = this.pathsOf(address, id);
    // The record goes first: without it the post no longer exists, whatever happens next.
    await unlinkIfPresent(paths.record);
    await unlinkIfPresent(paths.message);
    try {
      await syncDirectory(this.directoryOf(address));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }

  /** The record; undefined when there is none, null when it is corrupt (and logged). */
  private async readRecord(list: string, id: string): Promise<StoredRecord | null | undefined> {
    const { record: path } = this.pathsOf(list, id);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    const record = parseRecord(text, id, list);
    if (record === null) this.skipped(list, id + RECORD, 'record does not parse');
    return record;
  }

  /** A cheap check for listing: the message file exists and has the recorded size. */
  private async messageMatches(list: string, record: StoredRecord): Promise<boolean> {
    const { message } = this.pathsOf(list, record.id);
    try {
      if ((await stat(message)).size === record.bytes) return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    this.skipped(list, record.id + MESSAGE, 'message file missing or of another size');
    return false;
  }

  private skipped(list: string, file: string, reason: string): void {
    this.options.logger?.warn(
      { held: join(this.root, listDirectoryName(list), file), reason },
      'held post skipped',
    );
  }
}
