/**
 * The points computed at delivery on a real SQLite file (the point cache's): found by
 * (rk, E) only — never under another key — kept across a reopen, a damaged row ignored,
 * and a device's rows gone after forgetDevice / forgetOwner / clear. Whole BODY[] plans:
 * found only for the same keys and the very body bytes they were made from, at the body's
 * offset in the fetched message (the store may add header fields), identical to the plan
 * the transform makes.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { keysFingerprint } from '../../src/imap/plan-codec.js';
import { PointCache } from '../../src/imap/point-cache.js';
import { publicPoint, randomScalar, recryptPoint } from '../../src/recrypt/scalar.js';
import { wrapMessage } from '../../src/recrypt/smime.js';
import { planRecrypt } from '../../src/recrypt/transform.js';
import { makeTestUser } from '../helpers/proxy-pki.js';
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

describe('whole plans computed at delivery', () => {
  it('are found only for the same keys and body bytes, at the body in the fetched message', async () => {
    const user = await makeTestUser(dir.path, 'gail@example.org', 2);
    const [mine, theirs] = [user.devices[0]!.keys, user.devices[1]!.keys];
    const message = Buffer.from(
      wrapMessage(Buffer.from('Subject: plans\r\n\r\nbody\r\n'), user.group.certDer),
    );
    const edits = (bytes: Buffer) => {
      const plan = planRecrypt(bytes, 'message', mine);
      if (plan.kind !== 'edits') throw new Error(`no edits: ${plan.kind}`);
      return plan.edits;
    };
    const made = edits(message);
    const cache = new PointCache(':memory:');
    const plans = cache.delivered.plans;
    cache.delivered.putPlan('gail', 'dev-1', keysFingerprint(mine), message, made);
    expect(plans.lookup(keysFingerprint(mine), message)).toEqual(made);
    expect(plans.lookup(keysFingerprint(theirs), message)).toBeUndefined();
    // The store added a header field: the same edits, moved by its length.
    const added = Buffer.concat([Buffer.from('Return-Path: <x@y.example>\r\n'), message]);
    const moved = plans.lookup(keysFingerprint(mine), added);
    expect(moved?.map((e) => e.offset)).toEqual(made.map((e) => e.offset + 28));
    expect(moved).toEqual(edits(added));
    // One byte changed among those the edits lie in: not served.
    const changed = Buffer.from(message);
    const last = made.at(-1)!;
    changed[last.offset + last.bytes.length - 1]! ^= 1;
    expect(plans.lookup(keysFingerprint(mine), changed)).toBeUndefined();
    // Another message of the same layout (same DER header) has its own entry.
    const twin = Buffer.from(
      wrapMessage(Buffer.from('Subject: plans\r\n\r\nbody\r\n'), user.group.certDer),
    );
    cache.delivered.putPlan('gail', 'dev-1', keysFingerprint(mine), twin, edits(twin));
    cache.delivered.flush();
    expect(plans.lookup(keysFingerprint(mine), twin)).toEqual(edits(twin));
    expect(plans.lookup(keysFingerprint(mine), message)).toEqual(made);
    cache.forgetDevice('gail', 'dev-1');
    expect(plans.lookup(keysFingerprint(mine), message)).toBeUndefined();
    cache.close();
  });
});
