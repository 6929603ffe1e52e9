/**
 * Delivers one encrypted list post to every current member: the same bytes to
 * every local member's mailbox and the archive in one LMTP transaction, and for each
 * remote member a copy recrypted for their own certificate, sent by the outbound queue.
 *
 * Ordering, so that a 250 means everything is durable and a 4xx leaves nothing behind
 * that a retry would duplicate: the remote copies are written to the queue first but not
 * committed; then the local copies are stored; then the queue batch is committed. If the
 * store fails, the batch is aborted and the sender retries the whole post.
 *
 * Once the local copies are stored, `onCopyStored` hears of them (the members they are
 * for and the post's first bytes), so the proxy computes its points for the members'
 * devices off the reply's path (src/imap/adapters/points-at-delivery.ts, bounded there).
 */
import type { Logger } from 'pino';
import type { KeyStore, ListMember, User } from '../keystore/index.js';
import type { OutboundMessage, OutboundQueue, PreparedBatch } from '../outbound/types.js';
import { recryptForCertificate } from '../recrypt/index.js';
import type { Scalar } from '../recrypt/types.js';
import type { DeliveryResult, DeliveryTarget } from '../smtp/ports.js';
import { SmtpReply, replies } from '../smtp/reply.js';
import { controlAddress } from './control-addresses.js';
import type { ListPostDelivery, PostDeliveryResult } from './ports.js';

export interface PostDeliveryOptions {
  keyStore: KeyStore;
  /** The mail store (LMTP). */
  delivery: DeliveryTarget;
  queue: OutboundQueue;
  /** The store's user name for a local member; default the address. */
  mailboxOf?: (user: User) => string;
  /** Also keep the post in the list address's own mailbox (the archive). */
  archive: boolean;
  logger: Logger;
  /** Told of the stored local copies (as the MX's own hook); never fails the delivery. */
  onCopyStored?(copy: { owners: string[]; prefix: Uint8Array }): void;
}

/** The post's first bytes the hook gets: its header section and the CMS prefix's base64. */
const STORED_PREFIX_BYTES = 72 * 1024;

export function listPostDelivery(options: PostDeliveryOptions): ListPostDelivery {
  const mailboxOf = options.mailboxOf ?? ((user: User) => user.address.toLowerCase());
  return {
    async deliverPost(listAddress, mailFrom, ciphertext): Promise<PostDeliveryResult> {
      const list = await options.keyStore.getList(listAddress);
      if (list === null) throw new SmtpReply(550, '5.1.1', 'No such list here');
      const members = await options.keyStore.listMembers(list.address);
      const mailboxes = options.archive ? [list.address] : [];
      /** The local members by their mailbox (for `onCopyStored`). */
      const owners = new Map<string, string>();
      const remote: ListMember[] = [];
      for (const member of members) {
        if (member.certificate !== undefined) {
          remote.push(member);
          continue;
        }
        const user = await options.keyStore.getUser(member.address);
        if (user !== null && !mailboxes.includes(mailboxOf(user))) {
          mailboxes.push(mailboxOf(user));
          owners.set(mailboxOf(user), user.address);
        }
      }
      const batches: PreparedBatch[] = [];
      let results: DeliveryResult[];
      try {
        // One recrypted copy in memory at a time, however many remote members there are.
        for (const member of remote) {
          const copy = remoteCopy(
            options,
            list.address,
            member,
            ciphertext,
            await keysOf(options, list.address, member),
          );
          if (copy !== null) batches.push(await options.queue.prepare([copy]));
        }
        results =
          mailboxes.length === 0
            ? []
            : await storeLocally(options, mailFrom, mailboxes, ciphertext);
      } catch (error) {
        await Promise.allSettled(batches.map((batch) => batch.abort()));
        throw error;
      }
      for (const batch of batches) await batch.commit();
      reportStored(options, results, owners, ciphertext);
      options.logger.info(
        {
          list: list.address,
          local: mailboxes.length,
          remote: batches.length,
          bytes: ciphertext.byteLength,
        },
        'list post delivered',
      );
      const rejected = results.filter((result) => result.status === 'rejected');
      if (rejected.length > 0) {
        // Same rule as for single recipients (README "Permanent failures after DATA"): the
        // stored copies stay and the poster learns of the failure; nothing is lost silently.
        throw new SmtpReply(
          554,
          '5.2.0',
          `Delivery failed permanently for ${rejected.length} of ${results.length} list mailboxes; the others have the post`,
        );
      }
      return { local: results.length, remote: batches.length };
    },
  };
}

/** Tells `onCopyStored` of the members whose copy was stored; never fails the delivery. */
function reportStored(
  options: PostDeliveryOptions,
  results: DeliveryResult[],
  owners: Map<string, string>,
  ciphertext: Uint8Array,
): void {
  const stored = results.flatMap((result) =>
    result.status === 'stored' && owners.has(result.mailbox) ? [owners.get(result.mailbox)!] : [],
  );
  if (options.onCopyStored === undefined || stored.length === 0) return;
  try {
    const end = Math.min(ciphertext.byteLength, STORED_PREFIX_BYTES);
    options.onCopyStored({ owners: stored, prefix: Buffer.from(ciphertext.subarray(0, end)) });
  } catch (error) {
    options.logger.warn({ err: { name: (error as Error).name } }, 'after-store hook failed');
  }
}

async function storeLocally(
  options: PostDeliveryOptions,
  mailFrom: string,
  mailboxes: string[],
  ciphertext: Uint8Array,
): Promise<DeliveryResult[]> {
  let answered: DeliveryResult[];
  try {
    answered = await options.delivery.deliver({ mailFrom, mailboxes }, ciphertext);
  } catch (error) {
    options.logger.warn(
      { err: { name: (error as Error).name, message: (error as Error).message } },
      'store unavailable',
    );
    throw replies.storeUnavailable();
  }
  const results = mailboxes.map(
    (mailbox): DeliveryResult =>
      answered.find((result) => result.mailbox === mailbox) ?? {
        mailbox,
        status: 'temp-failed',
        response: 'no result',
      },
  );
  if (results.some((result) => result.status === 'temp-failed')) {
    options.logger.warn({ results }, 'list post not stored for every mailbox');
    throw replies.storeUnavailable();
  }
  return results;
}

/** The member's keys for every group of the list (the post names the current one; a sender's own envelope may name a former). */
async function keysOf(
  options: PostDeliveryOptions,
  list: string,
  member: ListMember,
): Promise<Map<string, Scalar>> {
  const keys = new Map<string, Scalar>();
  for (const key of await options.keyStore.listKeysForMember(member.address)) {
    if (key.list === list && key.memberGroupId === member.memberGroupId)
      keys.set(key.groupId, key.rk);
  }
  return keys;
}

/**
 * The copy for one remote member, recrypted for their certificate; null (logged) when the
 * post cannot be recrypted for them (no key for its group): the others still get theirs.
 */
function remoteCopy(
  options: PostDeliveryOptions,
  list: string,
  member: ListMember,
  ciphertext: Uint8Array,
  keys: Map<string, Scalar>,
): OutboundMessage | null {
  let message: Uint8Array;
  try {
    message = recryptForCertificate(ciphertext, keys, member.certificate!);
  } catch (error) {
    options.logger.warn(
      {
        list,
        member: member.address,
        err: { name: (error as Error).name, message: (error as Error).message },
      },
      'post not recryptable for a remote member; not sent to them',
    );
    return null;
  }
  return {
    mailFrom: controlAddress(list, 'bounces'),
    to: member.address,
    message,
    origin: { kind: 'list-post', list },
  };
}
