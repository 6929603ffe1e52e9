/**
 * Mailing lists: a list is a recryption group whose secret `g_list` only the
 * list owner's CLI holds. The store keeps the list record, its group certificates
 * (the current one and every former one, so old posts stay readable) and, per member,
 * `rk_{list→member} = g_list·g_member⁻¹` for each list group, wrapped under the gateway
 * key and bound to (list groupId, member groupId). The proxy composes these with each
 * device's own key at fetch time.
 */
import type { Scalar } from '../recrypt/types.js';

/** members: only members post; moderated: held for the owner; announce: only the owner; open: anyone. */
export type PostingPolicy = 'members' | 'moderated' | 'announce' | 'open';
export const POSTING_POLICIES: readonly PostingPolicy[] = [
  'members',
  'moderated',
  'announce',
  'open',
];

export interface ListGroup {
  /** The list group certificate's RecipientId, lowercase hex. */
  groupId: string;
  /** The list group certificate (DER), issued by the list owner's CA. */
  certificate: Uint8Array;
}

export interface MailingList {
  address: string;
  displayName: string;
  /** The list owner's (normalised) address; a user of this gateway. */
  owner: string;
  policy: PostingPolicy;
  /** Prefixed to the Subject of posts, e.g. "[dev]"; empty for none. */
  subjectTag: string;
  /** The group new posts are encrypted to. */
  group: ListGroup;
  /** Groups replaced by rotations, oldest first: their keys still read old posts. */
  formerGroups: ListGroup[];
  created: number;
}

export interface NewList {
  address: string;
  displayName?: string;
  owner: string;
  policy?: PostingPolicy;
  subjectTag?: string;
  group: ListGroup;
}

export interface ListUpdate {
  displayName?: string;
  policy?: PostingPolicy;
  subjectTag?: string;
}

export interface ListMember {
  address: string;
  /**
   * The member's own group RecipientId, the target the list keys are bound to; for a
   * remote member, the IssuerAndSerialNumber of their certificate.
   */
  memberGroupId: string;
  /**
   * A remote member's own S/MIME certificate (DER): a person who is not a user of this
   * gateway, whose list keys are g_list·d⁻¹ for the certificate's key. Absent for local
   * members.
   */
  certificate?: Uint8Array;
  joined: number;
}

/** One list key of a member: reads `groupId` (a current or former list group). */
export interface MemberListKey {
  list: string;
  groupId: string;
  memberGroupId: string;
  rk: Scalar;
}

export interface ListStore {
  /**
   * `DuplicateError('list')` if a list or a user has the address; `NotFoundError('user')`
   * if the owner is not a user.
   */
  createList(list: NewList): Promise<MailingList>;
  getList(address: string): Promise<MailingList | null>;
  /** Every list, sorted by address. */
  listLists(): Promise<MailingList[]>;
  updateList(address: string, update: ListUpdate): Promise<MailingList>;
  /** Deletes the list with its members and every key, atomically. */
  removeList(address: string): Promise<void>;

  /**
   * Adds the member (or replaces a member's key) with `rk_{list→member}` for the list's
   * current group. `NotFoundError('list' | 'user')`.
   */
  putListMember(list: string, member: string, memberGroupId: string, rk: Scalar): Promise<void>;
  /**
   * Adds a remote member (or replaces a member) with `rk = g_list·d⁻¹` for the list's
   * current group, where d is `certificate`'s key and `memberGroupId` its
   * IssuerAndSerialNumber hex. `NotFoundError('list')`; `KeyStoreArgumentError` if the
   * address is a user of this gateway (they join as local members).
   */
  putRemoteListMember(
    list: string,
    member: string,
    certificate: Uint8Array,
    memberGroupId: string,
    rk: Scalar,
  ): Promise<void>;
  /** Removes the member and deletes every key of theirs (all groups) in one change. */
  removeListMember(list: string, member: string): Promise<void>;
  listMembers(list: string): Promise<ListMember[]>;
  /** The lists `member` belongs to (sorted). */
  listsOfMember(member: string): Promise<string[]>;
  /** Every key the member holds, for every list and every (current and former) list group. */
  listKeysForMember(member: string): Promise<MemberListKey[]>;

  /**
   * One atomic change: `next` becomes the current group, the current one joins the
   * former groups, and every member's key for `next` is `delta·rk_current` (delta =
   * g_next·g_current⁻¹, used here and forgotten). Keys for former groups stay.
   * `expectedGroupId` guards against a concurrent rotation (`KeyStoreArgumentError`).
   */
  rotateList(
    list: string,
    expectedGroupId: string,
    next: ListGroup,
    delta: Scalar,
  ): Promise<MailingList>;
}
