/**
 * One Redis list as it is stored (list-scripts.ts has the key layout): its record, its
 * groups, its members and their wrapped keys, read in one MULTI so they show one
 * instant, and decoded into the key store's types.
 */
import { KeyStoreUnavailableError } from '../errors.js';
import type { ListGroup, ListMember, MailingList, PostingPolicy } from '../list-types.js';
import { mapError } from './codec.js';
import type { RedisClient } from './connect.js';
import { listKeys } from './list-scripts.js';

/** The four hashes of one list, as Redis returned them. */
export interface Snapshot {
  list: Record<string, string>;
  groups: Record<string, string>;
  members: Record<string, string>;
  rk: Record<string, Buffer>;
}

/** Reads the list's hashes at one instant; null when the list does not exist. */
export async function readListSnapshot(
  client: RedisClient,
  prefix: string,
  list: string,
): Promise<Snapshot | null> {
  const [l, g, m, r] = listKeys(prefix, list) as [string, string, string, string];
  let replies;
  try {
    replies = await client.multi().hgetall(l).hgetall(g).hgetall(m).hgetallBuffer(r).exec();
  } catch (err) {
    throw mapError(err);
  }
  if (replies === null) throw new KeyStoreUnavailableError('key store transaction aborted');
  for (const [err] of replies) if (err) throw mapError(err);
  const [list_, groups, members, rk] = replies.map(([, v]) => v) as [
    Record<string, string>,
    Record<string, string>,
    Record<string, string>,
    Record<string, Buffer>,
  ];
  if (list_.address === undefined) return null;
  return { list: list_, groups, members, rk };
}

/** The list a snapshot holds, its groups in the order they were current. */
export function toMailingList(s: Snapshot): MailingList {
  const all = Object.entries(s.groups)
    .map(([groupId, json]) => {
      const g = JSON.parse(json) as { certificate: string; seq: number };
      return {
        groupId,
        certificate: new Uint8Array(Buffer.from(g.certificate, 'base64')),
        seq: g.seq,
      };
    })
    .sort((a, b) => a.seq - b.seq)
    .map(({ groupId, certificate }): ListGroup => ({ groupId, certificate }));
  const current = all.find((g) => g.groupId === s.list.groupId);
  if (current === undefined) throw new KeyStoreUnavailableError('list record without its group');
  return {
    address: s.list.address!,
    displayName: s.list.displayName ?? '',
    owner: s.list.owner!,
    policy: s.list.policy as PostingPolicy,
    subjectTag: s.list.subjectTag ?? '',
    group: current,
    formerGroups: all.filter((g) => g.groupId !== current.groupId),
    created: Number(s.list.created),
  };
}

/** The members a snapshot holds, sorted by address. */
export function toListMembers(s: Snapshot): ListMember[] {
  return Object.entries(s.members)
    .map(([address, json]) => {
      const m = JSON.parse(json) as {
        memberGroupId: string;
        joined: number;
        certificate?: string;
      };
      return {
        address,
        memberGroupId: m.memberGroupId,
        ...(m.certificate !== undefined
          ? { certificate: new Uint8Array(Buffer.from(m.certificate, 'base64')) }
          : {}),
        joined: m.joined,
      };
    })
    .sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
}
