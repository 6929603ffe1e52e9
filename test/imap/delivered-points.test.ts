/**
 * The points computed at delivery on a real SQLite file (the point cache's): found by
 * (rk, E) only — never under another key — kept across a reopen, a damaged row ignored,
 * and a device's rows gone after forgetDevice / forgetOwner / clear. Whole BODY[] plans:
 * found only for the same keys and the very body bytes they were made from, at the body's
 * offset in the fetched message (the store may add header fields), identical to the plan
 * the transform makes. The plans kept decoded in memory: the same body check, dropped with
 * their rows by forgetDevice / forgetOwner / clear (also those read back from the file),
 * bounded.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { DeliveredPlans } from '../../src/imap/delivered-plans.js';
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

describe('whole plans computed at delivery, kept in memory', () => {
  const message = (certDer: Uint8Array): Buffer =>
    Buffer.from(wrapMessage(Buffer.from('Subject: memory\r\n\r\nbody\r\n'), certDer));
  const editsFor = (bytes: Buffer, keys: Parameters<typeof planRecrypt>[2]) => {
    const plan = planRecrypt(bytes, 'message', keys);
    if (plan.kind !== 'edits') throw new Error(`no edits: ${plan.kind}`);
    return plan.edits;
  };
  /** Deletes every row behind the cache's back: what is found afterwards is in memory. */
  const emptyTable = (path: string): void => {
    const raw = new Database(path);
    raw.exec('DELETE FROM delivered_plans');
    raw.close();
  };

  it('serve from memory with the same body check, and go with the rows they belong to', async () => {
    const user = await makeTestUser(dir.path, 'hana@example.org', 2);
    const [one, two] = [user.devices[0]!.keys, user.devices[1]!.keys];
    const path = join(dir.path, 'plans-memory.sqlite');
    const [a, b, c] = [
      message(user.group.certDer),
      message(user.group.certDer),
      message(user.group.certDer),
    ];
    let cache = new PointCache(path);
    cache.delivered.putPlan('hana', 'dev-1', keysFingerprint(one), a, editsFor(a, one));
    cache.delivered.putPlan('hana', 'dev-2', keysFingerprint(two), a, editsFor(a, two));
    cache.delivered.flush();
    emptyTable(path);
    const plans = cache.delivered.plans;
    expect(plans.lookup(keysFingerprint(one), a)).toEqual(editsFor(a, one));
    expect(plans.lookup(keysFingerprint(two), a)).toEqual(editsFor(a, two));
    // Never for other keys, and only for the very bytes the edits were made from.
    expect(plans.lookup(keysFingerprint(two), b)).toBeUndefined();
    const changed = Buffer.from(a);
    const last = editsFor(a, one).at(-1)!;
    changed[last.offset]! ^= 1;
    expect(plans.lookup(keysFingerprint(one), changed)).toBeUndefined();
    // A revoked device's plans leave memory too; the other device's stay.
    cache.forgetDevice('hana', 'dev-1');
    expect(plans.lookup(keysFingerprint(one), a)).toBeUndefined();
    expect(plans.lookup(keysFingerprint(two), a)).toEqual(editsFor(a, two));
    cache.forgetOwner('hana');
    expect(plans.lookup(keysFingerprint(two), a)).toBeUndefined();

    // Plans read back from the file (another process computed them, or a restart) are
    // kept with their owner and device, so that forgetting drops them too.
    cache.delivered.putPlan('hana', 'dev-1', keysFingerprint(one), b, editsFor(b, one));
    cache.delivered.putPlan('hana', 'dev-2', keysFingerprint(two), c, editsFor(c, two));
    cache.close();
    cache = new PointCache(path);
    expect(cache.delivered.plans.lookup(keysFingerprint(one), b)).toEqual(editsFor(b, one));
    expect(cache.delivered.plans.lookup(keysFingerprint(two), c)).toEqual(editsFor(c, two));
    emptyTable(path);
    expect(cache.delivered.plans.lookup(keysFingerprint(one), b)).toEqual(editsFor(b, one));
    cache.forgetDevice('hana', 'dev-1');
    expect(cache.delivered.plans.lookup(keysFingerprint(one), b)).toBeUndefined();
    expect(cache.delivered.plans.lookup(keysFingerprint(two), c)).toEqual(editsFor(c, two));
    cache.clear();
    expect(cache.delivered.plans.lookup(keysFingerprint(two), c)).toBeUndefined();
    cache.close();
  });

  it('take a row from the file only past the body check: one copied under another key never serves', async () => {
    const user = await makeTestUser(dir.path, 'jo@example.org', 1);
    const keys = user.devices[0]!.keys;
    const fp = keysFingerprint(keys);
    const path = join(dir.path, 'plans-copied.sqlite');
    const [a, b] = [message(user.group.certDer), message(user.group.certDer)];
    let cache = new PointCache(path);
    cache.delivered.putPlan('jo', 'dev-1', fp, a, editsFor(a, keys));
    cache.delivered.putPlan('jo', 'dev-1', fp, b, editsFor(b, keys));
    cache.close();
    // b's row now holds a's plan (same layout, other points): damage, or a copy.
    const raw = new Database(path);
    const rows = raw.prepare('SELECT id, entry FROM delivered_plans ORDER BY rowid').all() as {
      id: Buffer;
      entry: Buffer;
    }[];
    raw
      .prepare('UPDATE delivered_plans SET entry = ? WHERE id = ?')
      .run(rows[0]!.entry, rows[1]!.id);
    raw.close();
    cache = new PointCache(path);
    expect(cache.delivered.plans.lookup(fp, b)).toBeUndefined();
    // Not kept in memory either: asked again, it is still refused.
    expect(cache.delivered.plans.lookup(fp, b)).toBeUndefined();
    expect(cache.delivered.plans.lookup(fp, a)).toEqual(editsFor(a, keys));
    cache.close();
  });

  it('hold at most their bound, the least recently used dropped first', async () => {
    const user = await makeTestUser(dir.path, 'ines@example.org', 1);
    const keys = user.devices[0]!.keys;
    const fp = keysFingerprint(keys);
    const db = new Database(':memory:');
    const plans = new DeliveredPlans(db, 2);
    const [a, b, c] = [
      message(user.group.certDer),
      message(user.group.certDer),
      message(user.group.certDer),
    ];
    plans.put('ines', 'dev-1', fp, a, editsFor(a, keys));
    plans.put('ines', 'dev-1', fp, b, editsFor(b, keys));
    expect(plans.lookup(fp, a)).toBeDefined();
    plans.put('ines', 'dev-1', fp, c, editsFor(c, keys));
    plans.flush();
    db.exec('DELETE FROM delivered_plans');
    // b was used least recently: gone from memory, and from the table here.
    expect(plans.lookup(fp, b)).toBeUndefined();
    expect(plans.lookup(fp, a)).toEqual(editsFor(a, keys));
    expect(plans.lookup(fp, c)).toEqual(editsFor(c, keys));
    plans.stop();
    db.close();
  });
});
