/**
 * One body literal of an untagged FETCH response, from its first byte to its last: finds
 * its recrypt plan — in the plan cache, from a prefix collected off the literal itself,
 * or (a partial fetch past the prefix, or one too short to plan from) from the section's
 * first bytes fetched by UID on a side connection (side-plan.ts) — then patches the
 * literal in place (same length) while it streams through. The response scanner (response-rewriter.ts)
 * finds where the literal starts and hands over its bytes until `active` turns false.
 *
 * Kept apart from the scanner because this is where the rewriter may wait (side fetches)
 * and the only part that reads or fills the plan cache; the scanner only knows IMAP syntax.
 *
 * Order for a literal from offset 0 when the cache can tell what it holds in memory
 * (`peek`): the plans in memory, then on the literal's first bytes the plan made at
 * delivery (`transform.known`), then the plan cache's file, then the transform plans.
 * A first fetch after delivery so reads no file only to miss; each source is safe on
 * its own (keyed by device and keys, checked against the bytes), so the order is only cost.
 *
 * Memory: only the prefix the planner asks for is held (capped at MAX_PREFIX); the rest
 * streams chunk by chunk; past the end of its edits a literal passes without the transform.
 */
import type { BodyContext } from './body-context.js';
import type { BodyItem } from './fetch-item.js';
import { joinViews } from './join-views.js';
import type { PlanKey, SettledPlan } from './plan-cache.js';
import type { BodyEdit, BodyTransform } from './ports.js';
import { MAX_PREFIX, planFromUpstream, SIDE_FETCH_BYTES, startsWith } from './side-plan.js';

const FIRST_PLAN_BYTES = 256;

export { MAX_PREFIX } from './side-plan.js';

export type {
  BodyContext,
  BodyEvent,
  BodyResult,
  PrefixRequest,
  Selection,
} from './body-context.js';

interface BodyLiteral {
  item: BodyItem;
  section: string;
  /** The response's UID if it came before the literal (it cannot change during it). */
  uid: number | undefined;
  /** The response's message sequence number (`* n FETCH`). */
  seq: number | undefined;
  length: number;
  remaining: number;
  pos: number;
  start: number;
  mode: 'resolve' | 'collect' | 'verify' | 'stream' | 'pass';
  collected: Uint8Array[];
  collectedLength: number;
  need: number;
  edits: readonly BodyEdit[];
  /** Offset (in the section) just past the last edit. */
  editsEnd: number;
  /**
   * 'verify' mode: a plan found by sequence number, used only if the literal's first bytes
   * equal `expect` (the same range of the message the side connection sent).
   */
  verify: { plan: SettledPlan; expect: Uint8Array } | null;
  /**
   * A whole literal whose plan was not in memory: the plan made at delivery is tried on
   * its first bytes before the plan cache's file is read (a first fetch after delivery
   * would read it only to miss), then that file, then the transform plans.
   */
  stored: PlanKey | null;
}

export class BodyLiteralRewriter {
  private body: BodyLiteral | null = null;
  /** Plans settled before the response told the UID; cached at its end. */
  private pending: { section: string; plan: SettledPlan }[] = [];

  constructor(
    private readonly context: BodyContext,
    private readonly emit: (bytes: Uint8Array) => void,
  ) {}

  /** True from `begin` until the literal's last byte has been emitted. */
  get active(): boolean {
    return this.body !== null;
  }

  /** A body literal of `length` bytes starts at `outputOffset` in the rewriter's output. */
  begin(
    item: BodyItem,
    length: number,
    uid: number | undefined,
    outputOffset: number,
    seq?: number,
  ): void {
    const section = `${item.binary ? 'BINARY' : 'BODY'}[${item.section}]`;
    this.body = {
      item,
      section,
      uid,
      seq,
      length,
      remaining: length,
      pos: 0,
      start: outputOffset,
      mode: 'collect',
      collected: [],
      collectedLength: 0,
      need: Math.min(length, FIRST_PLAN_BYTES),
      edits: [],
      editsEnd: 0,
      verify: null,
      stored: null,
    };
    const { cache, transform } = this.context;
    const key = this.planKey();
    const later =
      key !== null &&
      item.origin === 0 &&
      cache.peek !== undefined &&
      transform.known !== undefined;
    const plan = key === null ? undefined : later ? cache.peek!(key) : cache.get(key);
    if (later && plan === undefined) this.body.stored = key;
    if (plan !== undefined) this.adopt(plan);
    else if (item.origin > 0) this.body.mode = 'resolve';
    if (length === 0) this.finish();
  }

  /**
   * Takes the literal's bytes from `chunk` at `start`; returns where the literal's bytes
   * in it end. A promise only while a side fetch is waited for, so the common path stays
   * synchronous.
   */
  feed(chunk: Uint8Array, start: number): number | Promise<number> {
    const body = this.body!;
    if (body.mode === 'resolve') return this.resolveThenFeed(chunk, start);
    const take = Math.min(body.remaining, chunk.length - start);
    const piece = chunk.subarray(start, start + take);
    const end = start + take;
    body.remaining -= take;
    if (body.mode === 'collect' || body.mode === 'verify') {
      body.collected.push(piece);
      body.collectedLength += take;
      if (body.collectedLength < body.need && body.remaining > 0) return end;
      if (body.mode === 'verify') {
        this.settleVerified();
        return end;
      }
      const settled = this.planCollected();
      if (settled === 'resolve') return this.resolveCollected().then(() => end);
      return end;
    } else if (body.mode === 'stream') {
      const at = body.item.origin + body.pos;
      // Past the end of every edit, the rest of the literal passes as it is.
      if (at >= body.editsEnd) body.mode = 'pass';
      this.emit(at >= body.editsEnd ? piece : this.context.transform.apply(piece, at, body.edits));
      body.pos += take;
    } else {
      this.emit(piece);
      body.pos += take;
    }
    if (body.remaining === 0) this.finish();
    return end;
  }

  /** True while the prefix collected for planning holds views of earlier input. */
  holdsInput(): boolean {
    return this.body !== null && this.body.collected.length > 0;
  }

  /** The FETCH response ended: plans settled before its UID was known are cached under it. */
  responseEnded(uid: number | undefined): void {
    const selection = this.context.selection();
    if (uid !== undefined && selection !== null) {
      for (const { section, plan } of this.pending) {
        this.context.cache.set({ ...selection, uid, section }, plan);
      }
    }
    this.pending = [];
  }

  /** Upstream ended inside the literal: the prefix held for planning goes out raw. */
  abandon(): void {
    if (this.body !== null) for (const piece of this.body.collected) this.emit(piece);
    this.body = null;
  }

  private planKey(): PlanKey | null {
    const body = this.body!;
    const selection = this.context.selection();
    if (selection === null || body.uid === undefined) return null;
    // Named fields, not a spread: copying an object by spread was most of this per-literal
    // call in the proxy's profile (bench/proxy-child.ts under --cpu-prof).
    const { mailbox, uidValidity } = selection;
    return { mailbox, uidValidity, uid: body.uid, section: body.section };
  }

  private adopt(plan: SettledPlan): void {
    const body = this.body!;
    if (plan.kind === 'edits') {
      body.mode = 'stream';
      body.edits = plan.edits;
      body.editsEnd = 0;
      for (const edit of plan.edits)
        body.editsEnd = Math.max(body.editsEnd, edit.offset + edit.bytes.length);
    } else {
      body.mode = 'pass';
    }
    this.context.onBody?.({
      item: body.item,
      result: plan.kind === 'edits' ? 'recrypted' : 'unchanged',
      ...(plan.kind === 'unchanged' ? { reason: plan.reason } : {}),
      start: body.start,
      length: body.length,
    });
  }

  /** Plans from the collected prefix; says whether to keep collecting or ask upstream. */
  private planCollected(): 'settled' | 'collect' | 'resolve' {
    const body = this.body!;
    // A view of the chunk when the prefix lies in one (no copy: join-views.ts).
    const prefix = joinViews(body.collected);
    if (body.stored !== null) {
      const key = body.stored;
      body.stored = null;
      const known = this.safeKnown(prefix, body);
      const kept = known ?? this.context.cache.get(key);
      if (kept !== undefined) {
        this.settleCollected(kept, prefix, known !== undefined);
        return 'settled';
      }
    }
    const plan = this.safePlan(prefix, body);
    if (plan.kind === 'need-more') {
      if (plan.atLeast > MAX_PREFIX || plan.atLeast <= prefix.length) {
        this.settleCollected({ kind: 'unchanged', reason: 'prefix-limit' }, prefix);
        return 'settled';
      }
      if (body.remaining > 0) {
        body.need = plan.atLeast;
        return 'collect';
      }
      body.need = plan.atLeast;
      return 'resolve';
    }
    this.settleCollected(plan, prefix);
    return 'settled';
  }

  private settleCollected(plan: SettledPlan, prefix: Uint8Array, remember = true): void {
    const body = this.body!;
    body.collected = [];
    body.collectedLength = 0;
    this.adopt(plan);
    if (remember) this.remember(plan);
    this.emit(
      plan.kind === 'edits'
        ? this.context.transform.apply(prefix, body.item.origin, plan.edits)
        : prefix,
    );
    body.pos = prefix.length;
    if (body.remaining === 0) this.finish();
  }

  /** The literal ended before the planner had enough: a short partial such as `<0.100>`. */
  private async resolveCollected(): Promise<void> {
    const body = this.body!;
    const prefix = Buffer.concat(body.collected);
    const plan = await this.planFromUpstream(body.need, prefix);
    body.collected = [];
    if (typeof plan === 'string') {
      this.context.onBody?.({
        item: body.item,
        result: 'unresolved',
        reason: plan,
        start: body.start,
        length: body.length,
      });
      this.emit(prefix);
      this.finish();
      return;
    }
    this.remember(plan);
    this.adopt(plan);
    this.emit(
      plan.kind === 'edits'
        ? this.context.transform.apply(prefix, body.item.origin, plan.edits)
        : prefix,
    );
    this.finish();
  }

  private async resolveThenFeed(chunk: Uint8Array, start: number): Promise<number> {
    const plan = await this.planFromUpstream(SIDE_FETCH_BYTES);
    const body = this.body!;
    if (body.verify !== null) {
      body.mode = 'verify';
      body.need = body.verify.expect.length;
    } else if (typeof plan === 'string') {
      body.mode = 'pass';
      this.context.onBody?.({
        item: body.item,
        result: 'unresolved',
        reason: plan,
        start: body.start,
        length: body.length,
      });
    } else {
      this.adopt(plan);
    }
    return this.feed(chunk, start);
  }

  /** A plan from the section's first bytes on a side connection (side-plan.ts). */
  private async planFromUpstream(
    initial: number,
    seen?: Uint8Array,
  ): Promise<SettledPlan | string> {
    const body = this.body!;
    const found = await planFromUpstream(
      {
        fetchPrefix: this.context.fetchPrefix,
        cache: this.context.cache,
        selection: this.context.selection(),
        key: this.planKey(),
        item: body.item,
        seq: body.seq,
        length: body.length,
        plan: (prefix) => this.safePlan(prefix, body),
      },
      initial,
      seen,
    );
    if (typeof found === 'string') return found;
    if (found.verify !== null) body.verify = found.verify;
    return found.plan;
  }

  /** 'verify' mode has the bytes to compare: the plan is adopted, or the literal passes. */
  private settleVerified(): void {
    const body = this.body!;
    const { plan, expect } = body.verify!;
    body.verify = null;
    const held = Buffer.concat(body.collected);
    body.collected = [];
    body.collectedLength = 0;
    if (startsWith(held, expect) || (body.remaining === 0 && startsWith(expect, held))) {
      this.adopt(plan);
      this.emit(
        plan.kind === 'edits'
          ? this.context.transform.apply(held, body.item.origin, plan.edits)
          : held,
      );
    } else {
      body.mode = 'pass';
      this.context.onBody?.({
        item: body.item,
        result: 'unresolved',
        reason: 'sequence-mismatch',
        start: body.start,
        length: body.length,
      });
      this.emit(held);
    }
    body.pos = held.length;
    if (body.remaining === 0) this.finish();
  }

  private safeKnown(prefix: Uint8Array, body: BodyLiteral): SettledPlan | undefined {
    try {
      const plan = this.context.transform.known?.(prefix, body.item.form);
      return plan?.kind === 'need-more' ? undefined : plan;
    } catch {
      return undefined;
    }
  }

  private safePlan(prefix: Uint8Array, body: BodyLiteral): ReturnType<BodyTransform['plan']> {
    try {
      return this.context.transform.plan(prefix, body.item.form);
    } catch (error) {
      return { kind: 'unchanged', reason: `plan-error: ${(error as Error).message}` };
    }
  }

  private remember(plan: SettledPlan): void {
    const body = this.body!;
    if (body.item.origin !== 0) return;
    const key = this.planKey();
    if (key !== null) this.context.cache.set(key, plan);
    else this.pending.push({ section: body.section, plan });
  }

  private finish(): void {
    this.body = null;
  }
}
