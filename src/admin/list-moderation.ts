/**
 * The admin API's moderation routes (docs/lists.md "Moderation"), for the owner
 * of a moderated list, owner-signed: the held posts (envelope sender, size, time: all
 * the gateway can see), one post's S/MIME bytes (the owner's CLI reads them with the list
 * key), approve (delivered to the list, then no longer held) and reject (a notice to the
 * poster from the list's -owner address, then no longer held).
 */
import type { KeyStore } from '../keystore/index.js';
import type {
  HeldPost,
  HeldPostStore,
  ListPostDelivery,
  Notice,
  NoticeSender,
} from '../lists/ports.js';
import { controlAddress } from '../lists/control-addresses.js';
import { isHeldPostId } from '../lists/held-posts.js';
import { HttpError, parseJson, sendJson } from './http.js';
import { ownedList, type ListRouteDeps } from './lists.js';

/** What the admin server needs for moderation; without it the routes answer 503. */
export interface ListModeration {
  held: HeldPostStore;
  delivery: ListPostDelivery;
  notices: NoticeSender;
}

interface ModerationContext {
  keyStore: KeyStore;
  adminToken: string;
  clock: () => number;
  moderation?: ListModeration;
}

const MAX_REASON = 2000;
/** How long a shared claim on a post lasts: longer than a delivery to a list takes. */
const CLAIM_MS = 10 * 60_000;

type Handler<C extends ModerationContext> = Parameters<ListRouteDeps<C>['owner']>[0];
type Owner = ReturnType<ListRouteDeps<ModerationContext>['ownerOf']>;
/** One step on a held post that exists, for its list's owner; answers status and body. */
type Step = (
  moderation: ListModeration,
  list: string,
  post: HeldPost,
  message: Buffer,
  body: Buffer,
) => Promise<[number, unknown]>;

export function moderationRoutes<C extends ModerationContext>(
  deps: ListRouteDeps<C>,
): Array<{ method: string; pattern: RegExp; handler: Handler<C> }> {
  /**
   * Posts being approved or rejected, by list and id: a second request for the same post
   * meanwhile gets 409 instead of delivering it twice or rejecting it while it is delivered.
   */
  const busy = new Set<string>();

  const route = (step: Step): Handler<C> =>
    deps.owner(async (ctx, req, res, params, body) => {
      const { list, moderation } = await moderatedList(ctx, deps.ownerOf(req), params[0]!);
      const key = `${list}\0${params[1]!}`;
      if (busy.has(key)) throw new HttpError(409, 'this post is being moderated already');
      busy.add(key);
      let release: (() => Promise<void>) | null = null;
      try {
        if (moderation.held.claim !== undefined && isHeldPostId(params[1]!)) {
          // Another gateway process may be moderating it (the shared store): the same 409.
          release = await moderation.held.claim(list, params[1]!, CLAIM_MS);
          if (release === null) throw new HttpError(409, 'this post is being moderated already');
        }
        const held = await heldPost(moderation, list, params[1]!);
        const [status, value] = await step(moderation, list, held.post, held.message, body);
        sendJson(res, status, value);
      } finally {
        busy.delete(key);
        await release?.().catch(() => undefined);
      }
    });

  const L = '([^/]+)';
  return [
    {
      method: 'GET',
      pattern: new RegExp(`^/v1/owner/lists/${L}/held$`),
      handler: deps.owner(async (ctx, req, res, params) => {
        const { list, moderation } = await moderatedList(ctx, deps.ownerOf(req), params[0]!);
        const posts = await moderation.held.list(list);
        sendJson(res, 200, { list, held: posts.map(postView) });
      }),
    },
    {
      method: 'GET',
      pattern: new RegExp(`^/v1/owner/lists/${L}/held/${L}$`),
      handler: deps.owner(async (ctx, req, res, params) => {
        const { list, moderation } = await moderatedList(ctx, deps.ownerOf(req), params[0]!);
        const held = await heldPost(moderation, list, params[1]!);
        sendJson(res, 200, { post: postView(held.post), message: held.message.toString('base64') });
      }),
    },
    {
      method: 'POST',
      pattern: new RegExp(`^/v1/owner/lists/${L}/held/${L}/approve$`),
      handler: route(approve),
    },
    {
      method: 'POST',
      pattern: new RegExp(`^/v1/owner/lists/${L}/held/${L}/reject$`),
      handler: route(reject),
    },
  ];
}

const approve: Step = async (moderation, list, post, message) => {
  let delivered;
  try {
    delivered = await moderation.delivery.deliverPost(list, post.mailFrom, message);
  } catch (error) {
    throw new HttpError(503, `delivery failed, the post stays held: ${deliveryReason(error)}`);
  }
  await moderation.held.remove(list, post.id);
  return [200, { list, id: post.id, approved: true, delivered }];
};

const reject: Step = async (moderation, list, post, _message, raw) => {
  const reason = optionalReason(parseJson(raw));
  // The notice is queued before the post goes: if that fails the post stays held.
  const notify = post.mailFrom !== '';
  if (notify) {
    try {
      await moderation.notices.send(rejectionNotice(list, post, reason));
    } catch {
      throw new HttpError(503, 'the notice to the poster could not be queued, the post stays held');
    }
  }
  await moderation.held.remove(list, post.id);
  return [200, { list, id: post.id, rejected: true, notified: notify ? post.mailFrom : null }];
};

async function heldPost(moderation: ListModeration, list: string, id: string) {
  const held = isHeldPostId(id) ? await moderation.held.get(list, id) : null;
  if (held === null) throw new HttpError(404, 'held post not found');
  return held;
}

/** The list (404) owned by the signer (403), and the moderation parts (503 when absent). */
async function moderatedList(
  ctx: ModerationContext,
  signer: Owner,
  address: string,
): Promise<{ list: string; moderation: ListModeration }> {
  const list = await ownedList(ctx, signer, address);
  if (ctx.moderation === undefined) throw new HttpError(503, 'moderation not configured');
  return { list: list.address, moderation: ctx.moderation };
}

const postView = (post: HeldPost) => ({
  id: post.id,
  mailFrom: post.mailFrom,
  bytes: post.bytes,
  received: new Date(post.received).toISOString(),
});

function optionalReason(body: Record<string, unknown>): string | undefined {
  if (body.reason === undefined) return undefined;
  if (typeof body.reason !== 'string' || body.reason.length > MAX_REASON)
    throw new HttpError(400, `reason: expected a string of at most ${MAX_REASON} characters`);
  const reason = body.reason.replace(/\r\n?/g, '\n').trim();
  return reason === '' ? undefined : reason;
}

/** An SMTP reply's text is written for clients (src/smtp/reply.ts); anything else is not. */
function deliveryReason(error: unknown): string {
  const smtp = error as { responseCode?: unknown; message?: unknown };
  return typeof smtp?.responseCode === 'number' && typeof smtp.message === 'string'
    ? `${smtp.responseCode} ${smtp.message}`
    : 'the list could not be delivered to, try again later';
}

function rejectionNotice(list: string, post: HeldPost, reason: string | undefined): Notice {
  const received = new Date(post.received).toISOString();
  return {
    to: post.mailFrom,
    from: controlAddress(list, 'owner'),
    subject: `Your post to ${list} was rejected`,
    text:
      `Your post to the list ${list} (received ${received}, ${post.bytes} bytes) ` +
      `was rejected by the moderator.\n` +
      (reason === undefined ? '' : `\nReason given by the moderator:\n\n${reason}\n`),
    headers: { 'Auto-Submitted': 'auto-replied' },
  };
}
