/** Binds the proxy's BodyTransform port to the recrypt core for one device's keys. */
import { applyEdits, planRecrypt, type PointSource } from '../../recrypt/transform.js';
import type { DeviceRecryptKeys } from '../../recrypt/types.js';
import type { BodyPlan, BodyTransform } from '../ports.js';

/** `points`: recrypted points computed at delivery (../delivered-points.ts), found by E. */
export function recryptTransform(keys: DeviceRecryptKeys, points?: PointSource): BodyTransform {
  return {
    plan(prefix, form): BodyPlan {
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
