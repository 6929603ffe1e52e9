/**
 * Recrypt plans remembered per message section, so that a partial fetch starting past
 * the CMS prefix (Thunderbird's `BODY[]<65536.65536>` after `<0.65536>`) is patched
 * without asking upstream again. Keys name the mailbox and its UIDVALIDITY so a
 * recreated mailbox never reuses a stale plan. A small LRU: plans are a few hundred bytes.
 */
import type { BodyPlan } from './ports.js';

export interface PlanKey {
  mailbox: string;
  uidValidity: number;
  uid: number;
  /** Section plus BINARY/BODY distinction, e.g. 'BODY[]' or 'BINARY[1]'. */
  section: string;
}

export type SettledPlan = Exclude<BodyPlan, { kind: 'need-more' }>;

/** Where body literals find and keep plans: this session cache, or it over the point cache. */
export interface PlanLookup {
  get(key: PlanKey): SettledPlan | undefined;
  set(key: PlanKey, plan: SettledPlan): void;
  /**
   * The plan if it is at hand in memory (no file read); undefined says nothing about what
   * `get` finds. Absent: `get` is as cheap.
   */
  peek?(key: PlanKey): SettledPlan | undefined;
}

export class PlanCache implements PlanLookup {
  private readonly entries = new Map<string, SettledPlan>();

  constructor(private readonly capacity = 512) {}

  get(key: PlanKey): SettledPlan | undefined {
    const id = keyOf(key);
    const plan = this.entries.get(id);
    if (plan !== undefined) {
      this.entries.delete(id);
      this.entries.set(id, plan);
    }
    return plan;
  }

  set(key: PlanKey, plan: SettledPlan): void {
    const id = keyOf(key);
    this.entries.delete(id);
    this.entries.set(id, plan);
    while (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }

  get size(): number {
    return this.entries.size;
  }
}

function keyOf(key: PlanKey): string {
  return `${key.uidValidity}\u0000${key.uid}\u0000${key.section}\u0000${key.mailbox}`;
}
