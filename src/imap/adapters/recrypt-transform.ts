/** Binds the proxy's BodyTransform port to the recrypt core for one device's keys. */
import { applyEdits, planRecrypt } from '../../recrypt/transform.js';
import type { DeviceRecryptKeys } from '../../recrypt/types.js';
import type { BodyPlan, BodyTransform } from '../ports.js';

export function recryptTransform(keys: DeviceRecryptKeys): BodyTransform {
  return {
    plan(prefix, form): BodyPlan {
      const plan = planRecrypt(prefix, form, keys);
      if (plan.kind === 'unchanged') {
        return { kind: 'unchanged', reason: plan.reason };
      }
      return plan;
    },
    // applyEdits patches in place: the chunk is the proxy's own copy of upstream bytes.
    apply: (chunk, chunkOffset, edits) => applyEdits(chunk, chunkOffset, edits),
  };
}
