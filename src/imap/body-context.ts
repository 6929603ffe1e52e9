/**
 * What a body literal (body-literal.ts) takes from the session around it and tells it:
 * the transform and plan cache, the selected mailbox, the side connection's prefix
 * fetch, and an event per literal. Apart so that the literal's own file holds only its
 * states and the order in which it looks for a plan.
 */
import type { BodyItem } from './fetch-item.js';
import type { PlanLookup } from './plan-cache.js';
import type { BodyTransform } from './ports.js';

export interface Selection {
  /** The mailbox name exactly as the client sent it (quoted string or atom). */
  mailbox: string;
  uidValidity: number;
}

/**
 * The first bytes of a section, by UID, or by sequence number when the response named no
 * UID (a plain `FETCH n (BODY[]<0.500>)`). Sequence numbers are per connection: an
 * answer by sequence number is only used when it starts with the bytes the client's own
 * literal holds (see `planFromUpstream`).
 */
export type PrefixRequest = Selection & { item: BodyItem; length: number } & (
    { uid: number; seq?: undefined } | { uid?: undefined; seq: number }
  );

export type BodyResult = 'recrypted' | 'unchanged' | 'unresolved';

export interface BodyEvent {
  item: BodyItem;
  result: BodyResult;
  reason?: string;
  /** Offset of the literal's first byte in the rewriter's output, and its length. */
  start: number;
  length: number;
}

/** The part of the rewriter's context that body literals use. */
export interface BodyContext {
  transform: BodyTransform;
  cache: PlanLookup;
  /** The selected mailbox when a body literal starts; null when unknown. */
  selection(): Selection | null;
  /** First bytes of a section fetched by UID on a side connection; null when impossible. */
  fetchPrefix?(request: PrefixRequest): Promise<Uint8Array | null>;
  onBody?(event: BodyEvent): void;
}
