/** Binds the proxy's BodyTransform port to the recrypt core for one device's keys. */
import { applyEdits, planRecrypt, type Edit, type PointSource } from '../../recrypt/transform.js';
import type { DeviceRecryptKeys } from '../../recrypt/types.js';
import type { BodyForm, BodyPlan, BodyTransform } from '../ports.js';

/**
 * `points`: recrypted points computed at delivery (../delivered-points.ts), found by E;
 * `plans`: whole BODY[] plans computed at delivery, found by the body's first bytes
 * (../delivered-plans.ts), which spare the parse too.
 */
export function recryptTransform(
  keys: DeviceRecryptKeys,
  points?: PointSource,
  plans?: (prefix: Uint8Array) => Edit[] | undefined,
): BodyTransform {
  const known = (prefix: Uint8Array, form: BodyForm): BodyPlan | undefined => {
    const edits = form === 'message' ? plans?.(prefix) : undefined;
    return edits === undefined ? undefined : { kind: 'edits', edits, delivered: true };
  };
  return {
    ...(plans === undefined ? {} : { known }),
    plan(prefix, form): BodyPlan {
      const delivered = known(prefix, form);
      if (delivered !== undefined) return delivered;
      const plan = planRecrypt(prefix, form, keys, points);
      if (plan.kind === 'unchanged') {
        return { kind: 'unchanged', reason: plan.reason };
      }
      return plan;
    },
    // applyEdits patches in place: the chunk is the proxy's own copy of upstream bytes.
    apply: (chunk, chunkOffset, edits) => applyEdits(chunk, chunkOffset, edits),
  };
}
