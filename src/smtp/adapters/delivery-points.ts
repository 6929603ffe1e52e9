/**
 * The recrypted points the proxy keeps for a stored copy (docs/design.md §4), computed
 * at delivery in the MX's worker threads (encrypt-worker.ts 'points' jobs; about 0.4 ms
 * of CPU per copy and device: the parse of the CMS prefix and one EC multiply per
 * recipient info), so that this work stays off the event loop and below its priority.
 * The proxy's side (src/imap/adapters/points-at-delivery.ts) picks the devices and
 * keeps the results.
 */
import { planRecrypt, type Edit } from '../../recrypt/transform.js';
import type { DeviceRecryptKeys } from '../../recrypt/types.js';
/** A stored copy's first bytes and the keys of devices to compute its points for. */
export interface PointsJob {
  id: number;
  prefix: Uint8Array;
  keys: DeviceRecryptKeys[];
}

/** One product E′ = ±rk·E the transform made. */
export interface PointProduct {
  point: Uint8Array;
  rk: bigint;
  recrypted: Uint8Array;
}

/** Per device (in the job's order): its products and its BODY[] edits, if it has a plan. */
export interface PointsResult {
  products: PointProduct[];
  edits: Edit[] | null;
}

/**
 * What the proxy's transform would write for each device: planRecrypt with a recorder
 * (the very code of a fetch), its products and edits copied out of the prefix's memory so
 * that posting them copies only them.
 */
export function computePoints(
  prefix: Uint8Array,
  keys: readonly DeviceRecryptKeys[],
): PointsResult[] {
  return keys.map((deviceKeys) => {
    const products: PointProduct[] = [];
    // A prefix the transform cannot plan from (not S/MIME, too long a header) plans
    // 'unchanged' or 'need-more' and records nothing.
    const plan = planRecrypt(prefix, 'message', deviceKeys, {
      known: () => undefined,
      computed: (point, rk, recrypted) =>
        products.push({ point: point.slice(), rk, recrypted: recrypted.slice() }),
    });
    const edits =
      plan.kind === 'edits'
        ? plan.edits.map((edit) => ({ offset: edit.offset, bytes: edit.bytes.slice() }))
        : null;
    return { products, edits };
  });
}
