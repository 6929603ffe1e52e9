/**
 * The point cache end to end: the proxy with its real key-store directory (SQLite) in
 * front of the embedded store, a message encrypted to the group by openssl, two devices
 * of one user. Each device gets its own recrypted point, from the cache too, and only its
 * own key reads it (openssl cms); revocation and a re-key (what a rotation does to a
 * device) delete the device's entries, and after a re-key the proxy's output follows the
 * new key, not the cached point; a new proxy on the same file serves the kept points.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { invalidateOnKeyStoreEvents } from '../../src/imap/adapters/point-cache-events.js';
import { keyStoreDirectory } from '../../src/imap/adapters/keystore-directory.js';
import { startImapProxy, type ImapProxy } from '../../src/imap/index.js';
import { PointCache } from '../../src/imap/point-cache.js';
import { recipientIdOf } from '../../src/recrypt/certificates.js';
import { randomScalar } from '../../src/recrypt/scalar.js';
import { ensureTlsMaterial } from '../../src/config/tls.js';
import { decryptWith, encryptToGroup } from '../helpers/proxy-pki.js';
import { startKeyStoreWorld, type KeyStoreWorld } from '../helpers/proxy-keystore-world.js';
import { openWire } from '../helpers/proxy-wire.js';
import { tempDir } from '../helpers/tmp.js';

describe('IMAP proxy with the point cache', () => {
  const dir = tempDir('imap-points-');
  const path = join(dir.path, 'point-cache.sqlite');
  const plain = Buffer.from('Subject: cached points\r\n\r\nonly for the right device\r\n');
  let world: KeyStoreWorld;
  let cache: PointCache;
  let stopEvents: () => void;
  let second: ImapProxy | undefined;

  beforeAll(async () => {
    cache = new PointCache(path);
    world = await startKeyStoreWorld('sqlite', { pointCache: cache }, 2);
    stopEvents = invalidateOnKeyStoreEvents(world.store, cache);
    await world.deliver(await encryptToGroup(plain, world.user.group));
  });
  afterAll(async () => {
    await second?.close();
    stopEvents?.();
    await world?.stop();
    cache?.close();
    dir.remove();
  });

  /** Device `index` logs in through `proxy` and fetches UID 1 (whole, or `partial`). */
  async function fetchBody(
    index: number,
    proxy: ImapProxy = world.proxy,
    partial = '',
  ): Promise<Buffer> {
    const w = await openWire(proxy.ports.starttls!);
    try {
      await w.waitFor(/^\* OK .*\r\n/);
      const device = world.user.devices[index]!;
      w.send(`L LOGIN ${world.user.address} ${device.password}\r\n`);
      await w.waitFor(/\nL OK .*\r\n/);
      w.send(`S SELECT INBOX\r\nF UID FETCH 1 (UID BODY.PEEK[]${partial})\r\n`);
      const text = await w.waitFor(/\nF OK .*\r\n/);
      const at = text.indexOf('* 1 FETCH');
      const match = /\{(\d+)\}\r\n/.exec(text.slice(at))!;
      const start = at + match.index + match[0].length;
      w.send('Z LOGOUT\r\n');
      return Buffer.from(text.slice(start, start + Number(match[1])), 'latin1');
    } finally {
      w.close();
    }
  }

  /** Committed entries per device record id. */
  function rowsOf(device: string): number {
    cache.flush();
    const db = new Database(path, { readonly: true });
    try {
      return (
        db.prepare('SELECT count(*) AS n FROM plans WHERE device = ?').get(device) as {
          n: number;
        }
      ).n;
    } finally {
      db.close();
    }
  }

  async function until(condition: () => boolean | Promise<boolean>): Promise<void> {
    for (let i = 0; i < 200; i++) {
      if (await condition()) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error('condition not reached');
  }

  const reads = (body: Buffer, index: number): Promise<boolean> =>
    decryptWith(body, world.user.devices[index]!).then(
      (out) => out.equals(plain),
      () => false,
    );

  let first: Buffer[] = [];

  it('gives each device its own point, computed once and then served from the cache', async () => {
    first = [await fetchBody(0), await fetchBody(1)];
    expect(first[0]!.equals(first[1]!)).toBe(false);
    expect(await reads(first[0]!, 0)).toBe(true);
    expect(await reads(first[0]!, 1)).toBe(false);
    expect(await reads(first[1]!, 1)).toBe(true);
    expect(await reads(first[1]!, 0)).toBe(false);
    expect(rowsOf(world.ids[0]!)).toBe(1);
    expect(rowsOf(world.ids[1]!)).toBe(1);

    const hits = cache.stats.hits;
    const again = [await fetchBody(1), await fetchBody(0)];
    expect(cache.stats.hits).toBe(hits + 2);
    expect(again[0]!.equals(first[1]!)).toBe(true);
    expect(again[1]!.equals(first[0]!)).toBe(true);
    expect(await reads(again[0]!, 0)).toBe(false);
    expect(await reads(again[1]!, 1)).toBe(false);
  });

  it('a partial fetch past offset 0 takes its plan from the cache (new session)', async () => {
    const hits = cache.stats.hits;
    const part = await fetchBody(0, world.proxy, '<1.1999>');
    expect(cache.stats.hits).toBe(hits + 1);
    expect(part.equals(first[0]!.subarray(1, 2000))).toBe(true);
    // The range holds the device's edits: the other device's copy differs in it.
    expect(part.equals(first[1]!.subarray(1, 2000))).toBe(false);
  });

  it("a re-key (rotation) deletes the device's entries; the proxy follows the new key", async () => {
    const groupId = Buffer.from(recipientIdOf(world.user.group.certDer)).toString('hex');
    const rightKey = world.user.devices[0]!.keys.keys.get(groupId)!;
    // A wrong key: if the cached point were still served the device would read the mail.
    await world.store.putRecryptionKey(world.user.address, world.ids[0]!, groupId, randomScalar());
    await until(() => rowsOf(world.ids[0]!) === 0);
    expect(rowsOf(world.ids[1]!)).toBe(1);
    let body = first[0]!;
    await until(async () => !(body = await fetchBody(0)).equals(first[0]!));
    expect(await reads(body, 0)).toBe(false);

    await world.store.putRecryptionKey(world.user.address, world.ids[0]!, groupId, rightKey);
    await until(async () => (body = await fetchBody(0)).equals(first[0]!));
    expect(await reads(body, 0)).toBe(true);
  });

  it('a new proxy on the same file serves the kept points (restart)', async () => {
    cache.flush();
    const reopened = new PointCache(path);
    try {
      const tls = await ensureTlsMaterial(dir.path);
      second = await startImapProxy({
        host: '127.0.0.1',
        starttlsPort: 0,
        tls: { key: tls.key, cert: tls.cert },
        upstream: { host: '127.0.0.1', port: world.upstream.port, tls: false },
        master: world.upstream.master,
        directory: keyStoreDirectory(world.store),
        allowPlaintextOnLoopback: true,
        pointCache: reopened,
      });
      const body = await fetchBody(1, second);
      expect(reopened.stats).toMatchObject({ hits: 1, misses: 0 });
      expect(body.equals(first[1]!)).toBe(true);
      expect(await reads(body, 1)).toBe(true);
    } finally {
      await second?.close();
      second = undefined;
      reopened.close();
    }
  });

  it("revocation deletes the device's entries and no other's", async () => {
    await fetchBody(0);
    expect(rowsOf(world.ids[0]!)).toBe(1);
    expect(rowsOf(world.ids[1]!)).toBe(1);
    await world.store.revokeDevice(world.user.address, world.ids[1]!);
    await until(() => rowsOf(world.ids[1]!) === 0);
    expect(rowsOf(world.ids[0]!)).toBe(1);
  });
});
