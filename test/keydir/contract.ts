/**
 * What every KeyDirectory store must do (src/keydir/types.ts), run against SQLite and
 * Redis by sqlite.test.ts and redis.test.ts. Records are made up (the stores do not look
 * inside the DER); the clock is the test's.
 */
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { HarvestedCertificate, KeyDirectory } from '../../src/keydir/index.js';

const DAY = 86_400_000;
export const NOW = Date.parse('2026-06-01T12:00:00Z');

export function record(
  address: string,
  seenDaysAgo: number,
  options: { expired?: boolean } = {},
): HarvestedCertificate {
  const der = new Uint8Array(randomBytes(64));
  return {
    address,
    domain: address.slice(address.indexOf('@') + 1),
    fingerprint: createHash('sha256').update(der).digest('hex'),
    der,
    keyType: 'rsa',
    notBefore: new Date(NOW - 30 * DAY),
    notAfter: new Date(NOW + (options.expired === true ? -DAY : 300 * DAY)),
    seenAt: new Date(NOW - seenDaysAgo * DAY),
    rsaKeyTransport: 'rsa-oaep-sha256',
  };
}

export function keyDirectoryContract(
  name: string,
  open: (now: () => number) => Promise<KeyDirectory>,
): void {
  describe(`key directory contract: ${name}`, () => {
    it('keeps what it is given, byte for byte, most recently seen first', async () => {
      const directory = await open(() => NOW);
      try {
        const older = record('bob@c.test', 5);
        const newer = record('bob@c.test', 1);
        await directory.remember(older, 3);
        await directory.remember(newer, 3);
        const found = await directory.forAddress('BOB@c.test');
        expect(found.map((r) => r.fingerprint)).toEqual([newer.fingerprint, older.fingerprint]);
        expect(Buffer.from(found[0]!.der).equals(Buffer.from(newer.der))).toBe(true);
        expect(found[0]).toEqual({ ...newer, der: found[0]!.der });
        expect(await directory.forAddress('nobody@c.test')).toEqual([]);
      } finally {
        await directory.close();
      }
    });

    it('the same certificate seen again is one record with the new time', async () => {
      const directory = await open(() => NOW);
      try {
        const first = record('dora@c.test', 9);
        await directory.remember(first, 3);
        await directory.remember({ ...first, seenAt: new Date(NOW) }, 3);
        const found = await directory.forAddress('dora@c.test');
        expect(found).toHaveLength(1);
        expect(found[0]!.seenAt.getTime()).toBe(NOW);
      } finally {
        await directory.close();
      }
    });

    it('keeps at most N per address: the expired go first, then the least recently seen', async () => {
      const directory = await open(() => NOW);
      try {
        const expired = record('erin@d.test', 0, { expired: true });
        const old = record('erin@d.test', 20);
        const mid = record('erin@d.test', 10);
        const recent = record('erin@d.test', 1);
        for (const r of [expired, old, mid, recent]) await directory.remember(r, 2);
        const kept = (await directory.forAddress('erin@d.test')).map((r) => r.fingerprint);
        expect(kept).toEqual([recent.fingerprint, mid.fingerprint]);
      } finally {
        await directory.close();
      }
    });

    it('lists by domain or all, and removes one or all of an address', async () => {
      const directory = await open(() => NOW);
      try {
        const f1 = record('frank@list.test', 1);
        const f2 = record('frank@list.test', 2);
        const g = record('gina@list.test', 1);
        const h = record('hal@other.test', 1);
        for (const r of [f1, f2, g, h]) await directory.remember(r, 3);
        const listed = await directory.list('LIST.test');
        expect(listed.map((r) => r.address)).toEqual([
          'frank@list.test',
          'frank@list.test',
          'gina@list.test',
        ]);
        const all = (await directory.list()).map((r) => r.address);
        expect(all).toContain('hal@other.test');
        expect(all).toContain('gina@list.test');
        expect(await directory.remove('frank@list.test', f2.fingerprint)).toBe(1);
        expect((await directory.forAddress('frank@list.test')).map((r) => r.fingerprint)).toEqual([
          f1.fingerprint,
        ]);
        expect(await directory.remove('gina@list.test')).toBe(1);
        expect((await directory.list('list.test')).map((r) => r.address)).toEqual([
          'frank@list.test',
        ]);
        expect(await directory.remove('nobody@list.test')).toBe(0);
      } finally {
        await directory.close();
      }
    });
  });
}
