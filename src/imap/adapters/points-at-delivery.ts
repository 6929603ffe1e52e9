/**
 * Computes recrypted points at delivery (docs/design.md §4): the MX reports each copy the
 * store took (src/smtp `onCopyStored`: the users it is for and its first bytes), and so
 * does a list post's delivery (src/lists/post-delivery.ts: its local members); here,
 * after the SMTP reply and one copy at a time, each current device of each user gets
 * E′ = ±rk·E for the recipient info its client reads — exactly what the proxy's transform
 * would write, because it is the transform that computes it (planRecrypt with a recorder)
 * — kept in the point cache's `delivered` table, where the proxy's first fetch finds it.
 * A device's keys include its owner's composed list keys (keystore-directory.ts
 * `deviceKeysWithLists`), as a session's do, so a list post's points are found too.
 *
 * The computing (about 0.4 ms of CPU per copy and device) runs in the MX's worker
 * threads when the gateway gives `compute` (src/smtp/adapters/delivery-points.ts), below
 * the event loop's priority; without it, on the event loop, yielding between devices.
 *
 * A cache, so bounded and never in the way: at most `maxDevices` devices per user,
 * `maxOwners` users per copy (a large list's post: the rest multiply at first fetch), at
 * most `maxWaiting` copies waiting (more are skipped and counted; the proxy multiplies
 * for them at first fetch), one computation in flight, and a key store that cannot answer
 * skips the copy. Results are kept only for devices still current once they are back
 * (a revocation during the computation leaves nothing behind).
 */
import { setImmediate as yieldLoop } from 'node:timers/promises';
import { normaliseAddress, toDeviceRecryptKeys, type KeyStore } from '../../keystore/index.js';
import { planRecrypt, type Edit } from '../../recrypt/transform.js';
import type { DeviceRecryptKeys } from '../../recrypt/types.js';
import type { DeliveredPoints } from '../delivered-points.js';
import { keysFingerprint } from '../plan-codec.js';
import { deviceKeysWithLists } from './keystore-directory.js';

/** Per device, in the order given: the products E′ the transform made and its BODY[] edits. */
export type ComputePoints = (
  prefix: Uint8Array,
  keys: DeviceRecryptKeys[],
) => Promise<
  Array<{
    products: Array<{ point: Uint8Array; rk: bigint; recrypted: Uint8Array }>;
    edits: Edit[] | null;
  }>
>;

export interface PointsAtDeliveryOptions {
  keyStore: Pick<KeyStore, 'listDevices' | 'keysForDevice' | 'listKeysForMember'>;
  points: DeliveredPoints;
  /** Computes off the event loop (the MX's worker threads); default: on it. */
  compute?: ComputePoints;
  /** Users per copy computed for; the rest multiply at first fetch. */
  maxOwners?: number;
  /** Devices per user computed for; the rest multiply at first fetch. */
  maxDevices?: number;
  /** Copies waiting to be computed for; more are skipped. */
  maxWaiting?: number;
}

export interface PointsAtDelivery {
  /** Takes note of a stored copy (returns at once). */
  onCopyStored(copy: { owners: string[]; prefix: Uint8Array }): void;
  /** Resolves when every copy noted so far was computed for (tests, shutdown). */
  idle(): Promise<void>;
}

export const DEFAULT_MAX_DEVICES = 16;
export const DEFAULT_MAX_WAITING = 1024;
export const DEFAULT_MAX_OWNERS = 256;

/** On the event loop, a device at a time with a yield between (no worker threads). */
const onLoop: ComputePoints = async (prefix, keys) => {
  const results: Awaited<ReturnType<ComputePoints>> = [];
  for (const deviceKeys of keys) {
    const products: Array<{ point: Uint8Array; rk: bigint; recrypted: Uint8Array }> = [];
    const plan = planRecrypt(prefix, 'message', deviceKeys, {
      known: () => undefined,
      computed: (point, rk, recrypted) => products.push({ point, rk, recrypted }),
    });
    results.push({ products, edits: plan.kind === 'edits' ? plan.edits : null });
    await yieldLoop();
  }
  return results;
};

/** The point cache's form of an owner (as adapters/point-cache-events.ts forms it). */
function ownerKey(address: string): string {
  try {
    return normaliseAddress(address).toLowerCase();
  } catch {
    return address.trim().toLowerCase();
  }
}

export function pointsAtDelivery(options: PointsAtDeliveryOptions): PointsAtDelivery {
  const maxDevices = options.maxDevices ?? DEFAULT_MAX_DEVICES;
  const maxWaiting = options.maxWaiting ?? DEFAULT_MAX_WAITING;
  const { points, keyStore } = options;
  const waiting: Array<{ owners: string[]; prefix: Uint8Array }> = [];
  let running: Promise<void> | null = null;

  const compute = options.compute ?? onLoop;
  const maxOwners = options.maxOwners ?? DEFAULT_MAX_OWNERS;

  const computeFor = async (owner: string, prefix: Uint8Array): Promise<void> => {
    const devices = (await keyStore.listDevices(owner)).filter((d) => d.revoked === null);
    const chosen: Array<{ id: string; keys: DeviceRecryptKeys }> = [];
    for (const device of devices.slice(0, maxDevices)) {
      const keys = await deviceKeysWithLists(keyStore, owner, device.id);
      if (keys.size > 0) chosen.push({ id: device.id, keys: toDeviceRecryptKeys(device, keys) });
    }
    if (chosen.length === 0) return;
    const results = await compute(
      prefix,
      chosen.map((c) => c.keys),
    );
    // Only for devices still current now (one revoked meanwhile had its entries dropped).
    const current = new Set(
      (await keyStore.listDevices(owner)).filter((d) => d.revoked === null).map((d) => d.id),
    );
    const key = ownerKey(owner);
    chosen.forEach(({ id, keys }, i) => {
      const result = results[i];
      if (result === undefined || !current.has(id)) return;
      for (const { point, rk, recrypted } of result.products)
        points.put(key, id, point, rk, recrypted);
      // The whole BODY[] plan too, for a first fetch that need not even parse.
      if (result.edits !== null)
        points.putPlan(key, id, keysFingerprint(keys), prefix, result.edits);
    });
  };

  const drain = async (): Promise<void> => {
    for (let copy = waiting.shift(); copy !== undefined; copy = waiting.shift()) {
      if (copy.owners.length > maxOwners) points.stats.skipped += copy.owners.length - maxOwners;
      for (const owner of copy.owners.slice(0, maxOwners)) {
        try {
          await computeFor(owner, copy.prefix);
        } catch {
          // The key store could not answer: this copy is computed at first fetch instead.
          points.stats.skipped++;
        }
      }
    }
    running = null;
  };

  return {
    onCopyStored(copy) {
      if (waiting.length >= maxWaiting) {
        points.stats.skipped++;
        return;
      }
      waiting.push(copy);
      // Started on the next turn: the SMTP reply goes out first.
      running ??= yieldLoop().then(drain);
    },
    idle: async () => {
      while (running !== null) await running;
    },
  };
}
