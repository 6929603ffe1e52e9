/**
 * Recrypted points computed at delivery, end to end: a message sent by SMTP (nodemailer)
 * to the real MX, encrypted to the user's group and stored over LMTP in the embedded
 * store; the MX's after-store hook computes E′ for the user's current devices; the proxy
 * (real key-store directory, point cache on a SQLite file) serves the first fetch of
 * each device without a multiplication — counted by the delivered plans' and points'
 * stats: a plan hit means no parse and no multiply, a point miss means one multiply — and only
 * the device's own key reads it (openssl cms). A device added after delivery finds
 * nothing, multiplies, and reads its copy; a re-key (what a rotation does to a device)
 * and a revocation delete the device's rows and no other device's; a device revoked while
 * its points are being computed gets none. All of it with the computing in the MX's
 * worker threads (EncryptPool, as the gateway wires it) and on the event loop.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { invalidateOnKeyStoreEvents } from '../../src/imap/adapters/point-cache-events.js';
import {
  pointsAtDelivery,
  type PointsAtDelivery,
} from '../../src/imap/adapters/points-at-delivery.js';
import { PointCache } from '../../src/imap/point-cache.js';
import { recipientIdOf } from '../../src/recrypt/certificates.js';
import { randomScalar } from '../../src/recrypt/scalar.js';
import { computePoints } from '../../src/smtp/adapters/delivery-points.js';
import { EncryptPool } from '../../src/smtp/adapters/encrypt-pool.js';
import { recryptEncryptor } from '../../src/smtp/adapters/recrypt-encryptor.js';
import { keyStoreDirectory as mxDirectory } from '../../src/smtp/adapters/keystore-directory.js';
import { lmtpDelivery } from '../../src/smtp/lmtp-delivery.js';
import { startMxServer, type MxServer } from '../../src/smtp/mx-server.js';
import { startLmtpServer, type LmtpServerHandle } from '../../src/store/lmtp/index.js';
import { decryptWith } from '../helpers/proxy-pki.js';
import { startKeyStoreWorld, type KeyStoreWorld } from '../helpers/proxy-keystore-world.js';
import { openWire } from '../helpers/proxy-wire.js';
import { sendWithNodemailer } from '../helpers/smtp-senders.js';
import { tempDir } from '../helpers/tmp.js';

describe.each(['worker threads', 'event loop'] as const)(
  'recrypted points computed at delivery (%s)',
  (where) => {
    const dir = tempDir('imap-delivered-');
    let pool: EncryptPool | undefined;
    /** Runs after a computation and before its results are kept (a revocation meanwhile). */
    let beforeKept: (() => Promise<void>) | null = null;
    let world: KeyStoreWorld;
    let cache: PointCache;
    let stopEvents: () => void;
    let lmtp: LmtpServerHandle;
    let mx: MxServer;
    let atDelivery: PointsAtDelivery;
    let uid = 0;

    beforeAll(async () => {
      cache = new PointCache(join(dir.path, 'point-cache.sqlite'));
      // Three devices made, two in the key store at delivery; the third is added later.
      world = await startKeyStoreWorld('sqlite', { pointCache: cache }, 3, 2);
      stopEvents = invalidateOnKeyStoreEvents(world.store, cache);
      if (where === 'worker threads') pool = new EncryptPool({ size: 1 });
      atDelivery = pointsAtDelivery({
        keyStore: world.store,
        points: cache.delivered,
        compute: async (prefix, keys) => {
          const results =
            pool === undefined
              ? computePoints(prefix, keys)
              : await pool.computePoints(prefix, keys);
          await beforeKept?.();
          return results;
        },
      });
      lmtp = await startLmtpServer({ store: world.mail, port: 0 });
      mx = await startMxServer({
        port: 0,
        banner: 'points at delivery test',
        maxSize: 1024 * 1024,
        localDomains: ['example.org'],
        directory: mxDirectory({ keyStore: world.store, localDomains: ['example.org'] }),
        encryptor: recryptEncryptor(),
        delivery: lmtpDelivery({ host: '127.0.0.1', port: lmtp.port, timeoutMs: 10_000 }),
        logger: pino({ enabled: false }),
        onCopyStored: (copy) => atDelivery.onCopyStored(copy),
      });
    });
    afterAll(async () => {
      await mx?.close();
      await lmtp?.close();
      stopEvents?.();
      await world?.stop();
      await pool?.close();
      cache?.close();
      dir.remove();
    });

    /** Sends one message through the MX and waits until its points are computed; its UID. */
    async function sendOne(marker: string): Promise<number> {
      const raw = Buffer.from(
        `From: sender@elsewhere.test\r\nTo: ${world.user.address}\r\nSubject: ${marker}\r\n` +
          `Message-ID: <${marker}@elsewhere.test>\r\n\r\n${marker}: only for the devices\r\n`,
      );
      const sent = await sendWithNodemailer(
        mx.port,
        { from: 'sender@elsewhere.test', to: [world.user.address] },
        raw,
        { tls: false },
      );
      expect(sent.ok, sent.response).toBe(true);
      await atDelivery.idle();
      return ++uid;
    }

    /** Fetches served from delivery-time work, and multiplications, so far. */
    function counts(): { served: number; multiplied: number } {
      const { delivered } = cache;
      return {
        served: delivered.stats.hits + delivered.plans.stats.hits,
        multiplied: delivered.stats.misses,
      };
    }

    /** Device `index` logs in and fetches `uid` whole. */
    async function fetchBody(index: number, which: number): Promise<Buffer> {
      const w = await openWire(world.proxy.ports.starttls!);
      try {
        await w.waitFor(/^\* OK .*\r\n/);
        const device = world.user.devices[index]!;
        w.send(`L LOGIN ${world.user.address} ${device.password}\r\n`);
        await w.waitFor(/\nL OK .*\r\n/);
        w.send(`S SELECT INBOX\r\nF UID FETCH ${which} (UID BODY.PEEK[])\r\n`);
        const text = await w.waitFor(/\nF OK .*\r\n/);
        const at = text.indexOf(`FETCH (UID ${which} `);
        const match = /\{(\d+)\}\r\n/.exec(text.slice(at))!;
        const start = at + match.index + match[0].length;
        w.send('Z LOGOUT\r\n');
        return Buffer.from(text.slice(start, start + Number(match[1])), 'latin1');
      } finally {
        w.close();
      }
    }

    it('serves each current device its first fetch without a multiplication', async () => {
      const storedBefore = cache.delivered.stats.stored;
      const plansBefore = cache.delivered.plans.stats.stored;
      const which = await sendOne('first-fetch');
      // One recipient info per device's client encoding: one point and one plan per device.
      expect(cache.delivered.stats.stored - storedBefore).toBe(2);
      expect(cache.delivered.plans.stats.stored - plansBefore).toBe(2);
      for (const index of [0, 1]) {
        const before = counts();
        const planHits = cache.delivered.plans.stats.hits;
        const body = await fetchBody(index, which);
        expect(counts().served - before.served).toBe(1);
        expect(counts().multiplied - before.multiplied).toBe(0);
        // The whole plan was found (no parse either), under this device's keys only.
        expect(cache.delivered.plans.stats.hits - planHits).toBe(1);
        expect((await decryptWith(body, world.user.devices[index]!)).toString()).toContain(
          'first-fetch: only for the devices',
        );
        // Only that device's key reads its copy.
        await expect(decryptWith(body, world.user.devices[1 - index]!)).rejects.toThrow();
      }
    });

    it('a device added after delivery multiplies and still reads the message', async () => {
      const which = await sendOne('before-the-third');
      await world.register(2);
      const before = counts();
      const body = await fetchBody(2, which);
      expect(counts().served - before.served).toBe(0);
      expect(counts().multiplied - before.multiplied).toBe(1);
      expect((await decryptWith(body, world.user.devices[2]!)).toString()).toContain(
        'before-the-third: only for the devices',
      );
      // Mail after it is computed for it too.
      const after = await sendOne('after-the-third');
      const served = counts().served;
      await fetchBody(2, after);
      expect(counts().served - served).toBe(1);
    });

    it("a re-key (rotation) drops the device's points; its next first fetch multiplies", async () => {
      const which = await sendOne('re-keyed');
      const groupId = Buffer.from(recipientIdOf(world.user.group.certDer)).toString('hex');
      const rightKey = world.user.devices[0]!.keys.keys.get(groupId)!;
      expect(rowsOf(world.ids[0]!)).toBeGreaterThan(0);
      await world.store.putRecryptionKey(
        world.user.address,
        world.ids[0]!,
        groupId,
        randomScalar(),
      );
      await expect.poll(() => rowsOf(world.ids[0]!), { timeout: 10_000 }).toBe(0);
      expect(rowsOf(world.ids[1]!)).toBeGreaterThan(0);
      await world.store.putRecryptionKey(world.user.address, world.ids[0]!, groupId, rightKey);
      // Its rows are gone: the first fetch multiplies, and the device still reads the mail.
      const before = counts();
      const body = await fetchBody(0, which);
      expect(counts().served - before.served).toBe(0);
      expect(counts().multiplied - before.multiplied).toBe(1);
      expect((await decryptWith(body, world.user.devices[0]!)).toString()).toContain('re-keyed');
    });

    it("drops a revoked device's points and no other device's", async () => {
      const which = await sendOne('revoked');
      const revokedId = world.ids[1]!;
      expect(rowsOf(revokedId)).toBeGreaterThan(0);
      await world.store.revokeDevice(world.user.address, revokedId);
      await expect.poll(() => rowsOf(revokedId), { timeout: 10_000 }).toBe(0);
      // Device 0 still has its own point and plan for the message.
      const served = counts().served;
      const body = await fetchBody(0, which);
      expect(counts().served - served).toBe(1);
      expect((await decryptWith(body, world.user.devices[0]!)).toString()).toContain('revoked');
      await expect(decryptWith(body, world.user.devices[1]!)).rejects.toThrow();
    });

    it('a device revoked while its points are computed gets none; the others get theirs', async () => {
      // Device 1 is revoked by now; devices 0 and 2 are current.
      const revokedId = world.ids[2]!;
      const before = rowsOf(world.ids[0]!);
      beforeKept = async () => {
        beforeKept = null;
        await world.store.revokeDevice(world.user.address, revokedId);
        await expect.poll(() => rowsOf(revokedId), { timeout: 10_000 }).toBe(0);
      };
      await sendOne('revoked-meanwhile');
      expect(beforeKept).toBeNull();
      expect(rowsOf(revokedId)).toBe(0);
      expect(rowsOf(world.ids[0]!)).toBeGreaterThan(before);
    });

    /** Committed rows of computed points for one device record id. */
    function rowsOf(device: string): number {
      cache.delivered.flush();
      const db = new Database(join(dir.path, 'point-cache.sqlite'), { readonly: true });
      try {
        const count = (table: string): number =>
          (
            db.prepare(`SELECT count(*) AS n FROM ${table} WHERE device = ?`).get(device) as {
              n: number;
            }
          ).n;
        return count('delivered') + count('delivered_plans');
      } finally {
        db.close();
      }
    }
  },
);
