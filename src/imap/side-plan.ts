/**
 * A body literal's plan from upstream (body-literal.ts asks when the literal itself cannot
 * give one: a partial fetch past the prefix, or one too short to plan from): the
 * section's first bytes fetched on a side connection, by UID when the response named one
 * before the literal, else by its sequence number, the request growing as the planner
 * asks, up to MAX_PREFIX.
 *
 * The side connection numbers messages as of its own last command and the client's
 * session as of its own, so an expunge between the two can make one sequence number name
 * two messages. An answer by sequence number is therefore only used where it starts with
 * the bytes the client's literal holds (`seen`), or, for a literal past offset 0, where the
 * literal's bytes turn out to be the answer's (`verify`, checked by body-literal.ts as
 * they arrive). Where the bytes agree, the edits computed from them are the literal's.
 */
import type { BodyItem } from './fetch-item.js';
import type { PlanKey, PlanLookup, SettledPlan } from './plan-cache.js';
import type { BodyPlan } from './ports.js';
import type { BodyContext, PrefixRequest, Selection } from './body-literal.js';

/** A planner asking for more than this is refused: the body passes unchanged. */
export const MAX_PREFIX = 1024 * 1024;
/** The least a side connection asks for: most plans need far less, one round trip. */
export const SIDE_FETCH_BYTES = 8192;

export interface SidePlanInput {
  fetchPrefix: BodyContext['fetchPrefix'];
  cache: PlanLookup;
  selection: Selection | null;
  /** The plan cache key, when the response named the UID before the literal. */
  key: PlanKey | null;
  item: BodyItem;
  /** The response's message sequence number (`* n FETCH`). */
  seq: number | undefined;
  /** The literal's length. */
  length: number;
  /** The planner, never throwing (body-literal.ts' `safePlan`). */
  plan(prefix: Uint8Array): BodyPlan;
}

/** A plan, and for one found by sequence number the bytes the literal must start with. */
export interface SidePlan {
  plan: SettledPlan;
  verify: { plan: SettledPlan; expect: Uint8Array } | null;
}

/**
 * Asks upstream for the section's first bytes (at least `initial`), growing the request
 * as the planner asks. `seen` is what the client's literal holds from offset 0 (a short
 * partial such as `<0.500>`); an answer by sequence number must start with exactly those
 * bytes, else the literal passes unchanged (`sequence-mismatch`). Returns why not when
 * there is no plan.
 */
export async function planFromUpstream(
  input: SidePlanInput,
  initial: number,
  seen?: Uint8Array,
): Promise<SidePlan | string> {
  const { key, selection, fetchPrefix } = input;
  if (fetchPrefix === undefined || selection === null) return 'no-side-connection';
  const bySequence = key === null;
  if (bySequence && input.seq === undefined) return 'no-uid';
  let length = Math.max(initial, SIDE_FETCH_BYTES);
  for (let attempt = 0; attempt < 8; attempt++) {
    const request: PrefixRequest =
      key !== null
        ? { ...key, item: input.item, length }
        : { ...selection, seq: input.seq!, item: input.item, length };
    const prefix = await fetchPrefix(request);
    if (prefix === null) return 'side-fetch-failed';
    if (bySequence && seen !== undefined && !startsWith(prefix, seen)) {
      return 'sequence-mismatch';
    }
    const plan = input.plan(prefix);
    if (plan.kind !== 'need-more') {
      if (key !== null) input.cache.set(key, plan);
      const verify = bySequence && seen === undefined ? expectOverlap(input, plan, prefix) : null;
      return { plan, verify };
    }
    if (prefix.length < length || plan.atLeast > MAX_PREFIX || plan.atLeast <= prefix.length) break;
    length = plan.atLeast;
  }
  const plan: SettledPlan = { kind: 'unchanged', reason: 'prefix-limit' };
  if (key !== null) input.cache.set(key, plan);
  return { plan, verify: null };
}

/**
 * A literal past offset 0 whose plan came by sequence number: where the literal overlaps
 * the prefix the side connection sent, its bytes must be those bytes (checked as they
 * arrive, 'verify' mode). Every edit lies inside that prefix (the planner needed it to
 * place them), so a literal that starts past it is untouched whichever message it is.
 */
function expectOverlap(
  input: SidePlanInput,
  plan: SettledPlan,
  prefix: Uint8Array,
): SidePlan['verify'] {
  const from = input.item.origin;
  const to = Math.min(prefix.length, from + input.length);
  return to > from ? { plan, expect: prefix.subarray(from, to) } : null;
}

export function startsWith(whole: Uint8Array, start: Uint8Array): boolean {
  return (
    whole.length >= start.length &&
    Buffer.from(whole.buffer, whole.byteOffset, start.length).equals(start)
  );
}
