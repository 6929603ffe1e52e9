/**
 * The list owner's side of moderation (docs/lists.md "Moderation"). The gateway holds
 * posts to a moderated list as they arrived, S/MIME to the list group, and cannot read
 * them; the owner's CLI fetches each one and reads it with the list key file (every list
 * group secret, current and former, since a post held before a rotation is for an older
 * group), then approves (the gateway delivers it to the list) or rejects it (the gateway
 * tells the poster).
 */
import { simpleParser } from 'mailparser';
import { RecryptError, decryptMessage, recipientIdOf } from '../recrypt/index.js';
import { ownerClient } from './common.js';
import { callGateway } from './gateway-client.js';
import type { OwnerKey } from './key-file.js';
import type { ListSecrets } from './lists.js';

/** A held post as the gateway shows it: the envelope sender and size are all it knows. */
export interface HeldPostView {
  id: string;
  mailFrom: string;
  bytes: number;
  /** ISO 8601. */
  received: string;
}

/** What the list key shows of a held post: its own header fields, or why it cannot. */
export type HeldPostContent =
  | { readable: true; from: string; subject: string; date: string; message: Uint8Array }
  | { readable: false; reason: string };

// A held post is a whole message (the MX takes up to 50 MiB by default) in base64 JSON.
const HELD_REPLY_BYTES = 96 * 1024 * 1024;
const HELD_TIMEOUT_MS = 120_000;
const HEADER_LIMIT = 256 * 1024;

const path = (list: string, rest = ''): string =>
  `/v1/owner/lists/${encodeURIComponent(list.trim().toLowerCase())}/held${rest}`;
const postPath = (list: string, id: string, rest = ''): string =>
  path(list, `/${encodeURIComponent(id)}${rest}`);

export async function listHeldPosts(key: OwnerKey, list: string): Promise<HeldPostView[]> {
  return (await callGateway<{ held: HeldPostView[] }>(ownerClient(key), 'GET', path(list))).held;
}

/** The held post's bytes, exactly as the gateway keeps them. */
export async function fetchHeldPost(key: OwnerKey, list: string, id: string): Promise<Buffer> {
  const reply = await callGateway<{ message: string }>(
    { ...ownerClient(key), maxReplyBytes: HELD_REPLY_BYTES, timeoutMs: HELD_TIMEOUT_MS },
    'GET',
    postPath(list, id),
  );
  return Buffer.from(reply.message, 'base64');
}

/** The end of the header block (through its empty line), or the whole prefix if none. */
function headerBlock(message: Uint8Array): Buffer {
  const head = Buffer.from(message.subarray(0, HEADER_LIMIT));
  const crlf = head.indexOf('\r\n\r\n');
  const lf = head.indexOf('\n\n');
  const ends = [crlf === -1 ? -1 : crlf + 4, lf === -1 ? -1 : lf + 2].filter((e) => e !== -1);
  return ends.length === 0 ? head : head.subarray(0, Math.min(...ends));
}

/** Decrypts a held post with the first list group that opens it (newest first). */
export async function readHeldPost(
  secrets: ListSecrets,
  message: Uint8Array,
): Promise<HeldPostContent> {
  let reason = 'the list key file holds no group key';
  for (const group of [...secrets.groups].reverse()) {
    let plain: Uint8Array;
    try {
      plain = decryptMessage(message, {
        secret: group.secret,
        recipientId: recipientIdOf(group.certificate),
      });
    } catch (error) {
      if (!(error instanceof RecryptError)) throw error;
      reason = error.message;
      continue;
    }
    const parsed = await simpleParser(headerBlock(plain), {
      skipHtmlToText: true,
      skipTextToHtml: true,
      skipImageLinks: true,
    });
    return {
      readable: true,
      from: parsed.from?.text ?? '',
      subject: parsed.subject ?? '',
      date: parsed.date?.toISOString() ?? '',
      message: plain,
    };
  }
  return { readable: false, reason };
}

/** Delivers the held post to the list; answers how many mailboxes and remote members got it. */
export async function approveHeldPost(
  key: OwnerKey,
  list: string,
  id: string,
): Promise<{ local: number; remote: number }> {
  const reply = await callGateway<{ delivered: { local: number; remote: number } }>(
    { ...ownerClient(key), timeoutMs: HELD_TIMEOUT_MS },
    'POST',
    postPath(list, id, '/approve'),
    {},
  );
  return reply.delivered;
}

/** Drops the held post; the gateway tells the poster (with `reason`, if given). */
export async function rejectHeldPost(
  key: OwnerKey,
  list: string,
  id: string,
  reason?: string,
): Promise<{ notified: string | null }> {
  return callGateway<{ notified: string | null }>(
    ownerClient(key),
    'POST',
    postPath(list, id, '/reject'),
    reason === undefined ? {} : { reason },
  );
}
