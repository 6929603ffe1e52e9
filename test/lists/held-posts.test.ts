/**
 * The held-post store on a real data directory: posts survive a new instance byte for
 * byte, come back oldest first, go on removal; ids and list addresses cannot name a path
 * outside the list's own directory; corrupt records are skipped (and logged), not fatal.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  FileHeldPostStore,
  HeldPostIdError,
  isHeldPostId,
  listDirectoryName,
} from '../../src/lists/held-posts.js';
import { tempDir } from '../helpers/tmp.js';

const LIST = 'mods@example.org';

function recordingLogger(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino(
    { level: 'warn' },
    { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
  );
  return { logger, lines };
}

describe('FileHeldPostStore', () => {
  let dir: { path: string; remove: () => void };
  let now: number;
  const clock = () => now;

  beforeEach(() => {
    dir = tempDir('recrypt-held-');
    now = Date.UTC(2026, 10, 29, 9, 0, 0);
  });
  afterEach(() => dir.remove());

  it('keeps posts durably: a new instance reads the same bytes and records', async () => {
    const first = new FileHeldPostStore({ dataDir: dir.path, clock });
    const message = randomBytes(70_000);
    const held = await first.hold(LIST, 'poster@example.net', message);
    expect(isHeldPostId(held.id)).toBe(true);
    expect(held).toEqual({
      id: held.id,
      list: LIST,
      mailFrom: 'poster@example.net',
      bytes: message.length,
      received: now,
    });
    const files = readdirSync(join(dir.path, 'held', LIST)).sort();
    expect(files).toEqual([`${held.id}.json`, `${held.id}.p7m`]);

    const second = new FileHeldPostStore({ dataDir: dir.path, clock });
    expect(await second.list(LIST)).toEqual([held]);
    const read = await second.get(LIST, held.id);
    expect(read?.post).toEqual(held);
    expect(read?.message.equals(message)).toBe(true);
    // The address is case-insensitive, as everywhere in the key store.
    expect((await second.get('MODS@Example.org', held.id))?.post.id).toBe(held.id);
  });

  it('lists oldest first, per list, even within one millisecond', async () => {
    const store = new FileHeldPostStore({ dataDir: dir.path, clock });
    const a = await store.hold(LIST, 'a@example.net', Buffer.from('a'));
    const b = await store.hold(LIST, 'b@example.net', Buffer.from('b'));
    now -= 60_000; // a clock step back: order is by the time received
    const early = await store.hold(LIST, 'c@example.net', Buffer.from('c'));
    now += 120_000;
    const d = await store.hold(LIST, 'd@example.net', Buffer.from('d'));
    const other = await store.hold('other@example.org', 'e@example.net', Buffer.from('e'));
    expect((await store.list(LIST)).map((p) => p.id)).toEqual([early.id, a.id, b.id, d.id]);
    expect((await store.list('other@example.org')).map((p) => p.id)).toEqual([other.id]);
    expect(await store.list('nobody@example.org')).toEqual([]);
    expect(await store.get('other@example.org', a.id)).toBeNull();
  });

  it('removes a post; removing again, or an unknown id, is not an error', async () => {
    const store = new FileHeldPostStore({ dataDir: dir.path, clock });
    const keep = await store.hold(LIST, 'a@example.net', Buffer.from('keep'));
    const drop = await store.hold(LIST, 'b@example.net', Buffer.from('drop'));
    await store.remove(LIST, drop.id);
    await store.remove(LIST, drop.id);
    await store.remove('never@example.org', drop.id);
    expect(await store.get(LIST, drop.id)).toBeNull();
    expect((await store.list(LIST)).map((p) => p.id)).toEqual([keep.id]);
    expect(readdirSync(join(dir.path, 'held', LIST)).sort()).toEqual([
      `${keep.id}.json`,
      `${keep.id}.p7m`,
    ]);
  });

  it('refuses ids that are not its own, so no id names another path', async () => {
    const store = new FileHeldPostStore({ dataDir: dir.path, clock });
    const held = await store.hold(LIST, 'a@example.net', Buffer.from('x'));
    // A file next to the held directory that a traversal would reach.
    writeFileSync(join(dir.path, 'held', 'secret.json'), '{}');
    for (const bad of [
      '../secret',
      `../${LIST}/${held.id}`,
      `${held.id}.json`,
      '',
      '.',
      '..',
      'a/b',
      `${held.id}\0`,
      held.id.slice(1),
      `${held.id}x`,
      held.id.toUpperCase(),
    ]) {
      await expect(store.get(LIST, bad)).rejects.toBeInstanceOf(HeldPostIdError);
      await expect(store.remove(LIST, bad)).rejects.toBeInstanceOf(HeldPostIdError);
    }
    expect(existsSync(join(dir.path, 'held', 'secret.json'))).toBe(true);
    expect((await store.list(LIST)).map((p) => p.id)).toEqual([held.id]);
  });

  it('makes each list address one safe directory name that names no other list', async () => {
    expect(listDirectoryName('Dev@Example.org')).toBe('dev@example.org');
    expect(listDirectoryName('../x@example.org')).toBe('%2E.%2Fx@example.org');
    expect(listDirectoryName('a/b@example.org')).toBe('a%2Fb@example.org');
    expect(listDirectoryName('a%2Fb@example.org')).toBe('a%252fb@example.org');
    expect(listDirectoryName('dé@example.org')).toBe('d%C3%A9@example.org');
    const long = `${'x'.repeat(240)}@example.org`;
    expect(listDirectoryName(long)).toMatch(/^=[A-Za-z0-9_-]{43}$/);
    expect(() => listDirectoryName(' ')).toThrow(RangeError);

    const store = new FileHeldPostStore({ dataDir: dir.path, clock });
    const sneaky = await store.hold('../../escape@example.org', 'a@example.net', Buffer.from('x'));
    expect(readdirSync(dir.path)).toEqual(['held']);
    expect(readdirSync(join(dir.path, 'held'))).toEqual(['%2E.%2F..%2Fescape@example.org']);
    expect((await store.list('../../escape@example.org')).map((p) => p.id)).toEqual([sneaky.id]);
  });

  it('skips and logs corrupt records and mismatched messages, keeps the rest', async () => {
    const { logger, lines } = recordingLogger();
    const store = new FileHeldPostStore({ dataDir: dir.path, clock, logger });
    const good = await store.hold(LIST, 'good@example.net', Buffer.from('good post'));
    const garbled = await store.hold(LIST, 'g@example.net', Buffer.from('garbled'));
    const truncated = await store.hold(LIST, 't@example.net', Buffer.from('truncated'));
    const altered = await store.hold(LIST, 'x@example.net', Buffer.from('altered!'));
    const orphan = await store.hold(LIST, 'o@example.net', Buffer.from('orphan'));
    const listDir = join(dir.path, 'held', LIST);
    writeFileSync(join(listDir, `${garbled.id}.json`), '{"id": ');
    writeFileSync(join(listDir, `${truncated.id}.p7m`), 'trunc');
    writeFileSync(join(listDir, `${altered.id}.p7m`), 'ALTERED!'); // same size, other bytes
    writeFileSync(join(listDir, 'not-an-id.json'), '{}');
    const record = JSON.parse(readFileSync(join(listDir, `${orphan.id}.json`), 'utf8')) as object;
    writeFileSync(join(listDir, `${orphan.id}.json`), JSON.stringify({ ...record, list: 'x@y' }));

    expect((await store.list(LIST)).map((p) => p.id).sort()).toEqual([good.id, altered.id].sort());
    expect(await store.get(LIST, garbled.id)).toBeNull();
    expect(await store.get(LIST, truncated.id)).toBeNull();
    expect(await store.get(LIST, altered.id)).toBeNull();
    expect(await store.get(LIST, orphan.id)).toBeNull();
    expect((await store.get(LIST, good.id))?.message.toString()).toBe('good post');

    const reasons = lines.map((l) => `${String(l.held).split('/').at(-1)}: ${String(l.reason)}`);
    expect(reasons).toEqual(
      expect.arrayContaining([
        `${garbled.id}.json: record does not parse`,
        `${truncated.id}.p7m: message file missing or of another size`,
        `${altered.id}.p7m: message file differs from its record`,
        `${orphan.id}.json: record does not parse`,
        'not-an-id.json: not a held post id',
      ]),
    );
    // Logs name files, never the poster.
    expect(JSON.stringify(lines)).not.toMatch(/example\.net/);
  });
});
