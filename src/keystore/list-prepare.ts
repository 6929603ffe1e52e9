/**
 * Boundary checks for list records, shared by both adapters so they accept and refuse
 * the same input.
 */
import { multiplyScalars } from '../recrypt/scalar.js';
import type { Scalar } from '../recrypt/types.js';
import { KeyStoreArgumentError } from './errors.js';
import {
  POSTING_POLICIES,
  type ListGroup,
  type ListUpdate,
  type PostingPolicy,
} from './list-types.js';
import { checkDer, checkDisplayName, checkRecipientIdHex, checkScalar } from './validate.js';

export function checkPolicy(policy: PostingPolicy): PostingPolicy {
  if (!POSTING_POLICIES.includes(policy))
    throw new KeyStoreArgumentError(`policy must be one of ${POSTING_POLICIES.join(', ')}`);
  return policy;
}

export function checkSubjectTag(tag: string): string {
  // One header-safe line: no CR/LF or other controls (it goes into every post's Subject).
  if (typeof tag !== 'string' || tag.length > 64 || /[\p{Cc}]/u.test(tag))
    throw new KeyStoreArgumentError('subject tag must be one line of at most 64 characters');
  return tag;
}

export function checkListGroup(group: ListGroup): ListGroup {
  if (typeof group !== 'object' || group === null)
    throw new KeyStoreArgumentError('list group missing');
  return {
    groupId: checkRecipientIdHex(group.groupId, 'groupId'),
    certificate: new Uint8Array(checkDer(group.certificate, 'certificate')),
  };
}

export function checkListUpdate(update: ListUpdate): ListUpdate {
  const out: ListUpdate = {};
  if (update.displayName !== undefined) out.displayName = checkDisplayName(update.displayName);
  if (update.policy !== undefined) out.policy = checkPolicy(update.policy);
  if (update.subjectTag !== undefined) out.subjectTag = checkSubjectTag(update.subjectTag);
  return out;
}

/** rk_next = δ·rk_current: the rotation's re-key of one member. */
export function rotateKey(delta: Scalar, rk: Scalar): Scalar {
  return multiplyScalars(checkScalar(delta, 'delta'), checkScalar(rk));
}
