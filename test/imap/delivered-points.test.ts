/**
 * The points computed at delivery on a real SQLite file (the point cache's): found by
 * (rk, E) only — never under another key — kept across a reopen, a damaged row ignored,
 * and a device's rows gone after forgetDevice / forgetOwner / clear.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { PointCache } from '../../src/imap/point-cache.js';
import { publicPoint, randomScalar, recryptPoint } from '../../src/recrypt/scalar.js';
import { tempDir } from '../helpers/tmp.js';

const dir = tempDir('delivered-points-');
afterAll(() => dir.remove());

describe('points computed at delivery', () => {
  const path = join(dir.path, 'point-cache.sqlite');
  const e = publicPoint(randomScalar());
  const rk = randomScalar();
  const other = randomScalar();
  const product = recryptPoint(e, rk);

  it('serves a point only for the key and E it was made for, also after a reopen', () => {
    const cache = new PointCache(path);
    cache.delivered.put('erin@example.org', 'dev-1', e, rk, product);
    expect(Buffer.from(cache.delivered.lookup(e, rk)!).equals(Buffer.from(product))).toBe(true);
    expect(cache.delivered.lookup(e, other)).toBeUndefined();
    expect(cache.delivered.lookup(publicPoint(randomScalar()), rk)).toBeUndefined();
    cache.close();
    const reopened = new PointCache(path);
    const source = reopened.delivered.source();
    expect(Buffer.from(source.known(e, rk)!).equals(Buffer.from(product))).toBe(true);
    expect(source.known(e, other)).toBeUndefined();
    expect(reopened.delivered.stats).toMatchObject({ hits: 1, misses: 1 });
    reopened.close();
  });

  it('ignores a damaged row', () => {
    const db = new Database(path);
    db.prepare('UPDATE delivered SET point = substr(point, 1, 70) || zeroblob(11)').run();
    db.close();
    const cache = new PointCache(path);
    expect(cache.delivered.lookup(e, rk)).toBeUndefined();
    cache.close();
  });

  it("forgets a device's, an owner's and all rows", () => {
    const cache = new PointCache(path);
    const points = cache.delivered;
    points.clear();
    const keys = [randomScalar(), randomScalar(), randomScalar()];
    points.put('erin@example.org', 'dev-1', e, keys[0]!, recryptPoint(e, keys[0]!));
    points.put('erin@example.org', 'dev-2', e, keys[1]!, recryptPoint(e, keys[1]!));
    points.put('finn@example.org', 'dev-3', e, keys[2]!, recryptPoint(e, keys[2]!));
    expect(points.size()).toBe(3);
    cache.forgetDevice('erin@example.org', 'dev-1');
    expect(points.lookup(e, keys[0]!)).toBeUndefined();
    expect(points.lookup(e, keys[1]!)).toBeDefined();
    cache.forgetOwner('erin@example.org');
    expect(points.size()).toBe(1);
    cache.clear();
    expect(points.size()).toBe(0);
    cache.close();
  });
});
