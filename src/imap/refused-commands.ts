/**
 * Which client commands the relay (client-relay.ts) does not send upstream as written,
 * and what it sends in their place.
 *
 * Every session refuses the commands that would take the session out of the proxy's
 * hands: COMPRESS would compress the responses the rewriter must read; STARTTLS,
 * AUTHENTICATE, LOGIN and UNAUTHENTICATE would re-authenticate upstream; URLFETCH,
 * GENURLAUTH, RESETKEY and NOTIFY deliver bodies or push data around the rewriter. An IDLE
 * with anything after it is refused too: it is not IDLE to every server (Dovecot ignores
 * the rest). These go upstream as an unknown command, so that upstream answers them with
 * a tagged BAD in the right order.
 *
 * A read-only session (a list archive, archive.ts) also refuses what its policy refuses.
 * Those go upstream as NOOP, whose tagged OK the policy turns into its own NO: a client may
 * well send many writes in a row, and Dovecot disconnects after 20 invalid commands in a
 * row.
 */

export const REFUSED_COMMANDS = new Set([
  'COMPRESS',
  'STARTTLS',
  'AUTHENTICATE',
  'LOGIN',
  'UNAUTHENTICATE',
  'URLFETCH',
  'GENURLAUTH',
  'RESETKEY',
  'NOTIFY',
]);

/** Which commands a read-only session refuses; the policy answers their tags itself. */
export interface ReadOnlyPolicy {
  /** `name` is the command (after UID); true: refused, and the policy notes the tag. */
  refuses(tag: string, name: string): boolean;
}

/**
 * The command upstream gets instead of this one, or null when it is not refused.
 * `text` is the whole first line (latin1), `name` the command after UID, upper case.
 */
export function standInFor(
  text: string,
  tag: string,
  name: string,
  readOnly: ReadOnlyPolicy | undefined,
): 'X-REFUSED-BY-PROXY' | 'NOOP' | null {
  const badIdle = name === 'IDLE' && text.toUpperCase() !== `${tag.toUpperCase()} IDLE`;
  if (REFUSED_COMMANDS.has(name) || badIdle) return 'X-REFUSED-BY-PROXY';
  return readOnly?.refuses(tag, name) === true ? 'NOOP' : null;
}
