/**
 * Computes recrypted points at delivery (docs/design.md §4): the MX reports each copy the
 * store took (src/smtp `onCopyStored`: the users it is for and its first bytes); here,
 * after the SMTP reply and one copy at a time, each current device of each user gets
 * E′ = ±rk·E for the recipient info its client reads — exactly what the proxy's transform
 * would write, because it is the transform that computes it (planRecrypt with a recorder)
 * — kept in the point cache's `delivered` table, where the proxy's first fetch finds it.
 *
 * A cache, so bounded and never in the way: at most `maxDevices` devices per user, at
 * most `maxWaiting` copies waiting (more are skipped and counted; the proxy multiplies
 * for them at first fetch), the event loop yielded between devices, and a key store that
 * cannot answer skips the copy. Mailing-list posts are not covered (a post is delivered
 * once to the list's queue, not per member; the proxy multiplies at first fetch).
 */
import { setImmediate as yieldLoop } from 'node:timers/promises';
import { normaliseAddress, toDeviceRecryptKeys, type KeyStore } from '../../keystore/index.js';
import { planRecrypt } from '../../recrypt/transform.js';
import type { DeliveredPoints } from '../delivered-points.js';
import { keysFingerprint } from '../plan-codec.js';

export interface PointsAtDeliveryOptions {
  keyStore: Pick<KeyStore, 'listDevices' | 'keysForDevice'>;
  points: DeliveredPoints;
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

  const computeFor = async (owner: string, prefix: Uint8Array): Promise<void> => {
    const devices = (await keyStore.listDevices(owner)).filter((d) => d.revoked === null);
    for (const device of devices.slice(0, maxDevices)) {
      const keys = await keyStore.keysForDevice(owner, device.id);
      if (keys.size === 0) continue;
      const recorder = points.recorder(ownerKey(owner), device.id);
      const deviceKeys = toDeviceRecryptKeys(device, keys);
      // A prefix the transform cannot plan from (not S/MIME, too long a header) plans
      // 'unchanged' or 'need-more' and records nothing.
      const plan = planRecrypt(prefix, 'message', deviceKeys, recorder);
      // The whole BODY[] plan too, for a first fetch that need not even parse.
      if (plan.kind === 'edits')
        points.putPlan(ownerKey(owner), device.id, keysFingerprint(deviceKeys), prefix, plan.edits);
      await yieldLoop();
    }
  };

  const drain = async (): Promise<void> => {
    for (let copy = waiting.shift(); copy !== undefined; copy = waiting.shift()) {
      for (const owner of copy.owners) {
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
