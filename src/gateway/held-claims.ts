/**
 * Claims on held posts between the processes of one gateway with the SQLite key store
 * (docs/lists.md "Moderation", docs/deployment.md "Several processes on one machine"). The
 * posts are files every worker reads; an approval delivers the post and then removes it,
 * so two approvals of one post through two workers at once would deliver it twice. The
 * moderation route claims a post first (`HeldPostStore.claim`, as Redis does it with a
 * key); here the primary holds the claims (`HeldClaims`) and the workers ask it over IPC
 * (`claimingHeldPosts`). A question the primary does not answer fails the moderation
 * request: it can be retried, a second delivery cannot be taken back.
 */
import { randomBytes } from 'node:crypto';
import { isHeldPostId, HeldPostIdError } from '../lists/held-posts.js';
import type { HeldPostStore } from '../lists/ports.js';
import type { SharedAnswer, SharedQuestion } from './roles.js';

/** Claims last seconds (a delivery to a list); more at once than this is refused. */
const MAX_CLAIMS = 10_000;

/** The claims, in the process the others ask (the primary). */
export class HeldClaims {
  readonly #claims = new Map<string, { token: string; expires: number }>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** A token for `key` for `ms`; null while another claim on it lasts. */
  claim(key: string, ms: number): string | null {
    const now = this.#now();
    const current = this.#claims.get(key);
    if (current !== undefined && current.expires > now) return null;
    if (current === undefined && this.#claims.size >= MAX_CLAIMS) {
      for (const [other, claim] of this.#claims)
        if (claim.expires <= now) this.#claims.delete(other);
      if (this.#claims.size >= MAX_CLAIMS) return null;
    }
    const token = randomBytes(12).toString('hex');
    this.#claims.set(key, { token, expires: now + ms });
    return token;
  }

  /** Gives the claim back, if `token` still holds it. */
  release(key: string, token: string): void {
    if (this.#claims.get(key)?.token === token) this.#claims.delete(key);
  }
}

/** `store` with claims held by another process, asked through `ask`. */
export function claimingHeldPosts(
  store: HeldPostStore,
  ask: (question: SharedQuestion) => Promise<SharedAnswer>,
): HeldPostStore {
  return {
    hold: (list, mailFrom, ciphertext) => store.hold(list, mailFrom, ciphertext),
    list: (list) => store.list(list),
    get: (list, id) => store.get(list, id),
    remove: (list, id) => store.remove(list, id),
    async claim(list, id, ms) {
      if (!isHeldPostId(id)) throw new HeldPostIdError();
      const key = `${list.trim().toLowerCase()}\0${id}`;
      const answer = await ask({ kind: 'held-claim', key, ms });
      if (answer.kind !== 'held-claim') throw new Error('malformed held post claim');
      const token = answer.token;
      if (token === null) return null;
      return async () => {
        await ask({ kind: 'held-release', key, token });
      };
    },
  };
}
