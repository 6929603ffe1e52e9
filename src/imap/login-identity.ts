/**
 * Who a client logs in as, from LOGIN's user name or a SASL PLAIN response. A device
 * logs in as its owner's address. A member's device opens a list's archive
 * the way Dovecot's master users act for another user (auth_master_user_separator `*`):
 * `LOGIN "<list>*<member>" <device password>`, or SASL PLAIN (RFC 4616) with authzid =
 * the list and authcid = the member. Which of these a device may actually do is the
 * directory's decision; here only the forms are read.
 */
import type { AuthenticatedDevice, DeviceDirectory } from './ports.js';

export interface LoginIdentity {
  /** The address whose device credential is checked (and throttled). */
  member: string;
  /** The list whose archive is opened; null: the member's own mailbox. */
  list: string | null;
}

/**
 * `<list>*<member>` splits at the first `*` after the list's `@`: a domain never holds
 * `*`, so a local part may (a user `a*b@example.org` still logs in as itself).
 */
export function loginIdentity(name: string): LoginIdentity {
  const at = name.indexOf('@');
  const separator = at === -1 ? -1 : name.indexOf('*', at);
  if (separator === -1) return { member: name, list: null };
  return { member: name.slice(separator + 1), list: name.slice(0, separator) };
}

/** A SASL PLAIN initial response (base64); null when it is not one. */
export function saslPlainLogin(
  response: string,
): { identity: LoginIdentity; password: string } | null {
  const text = response === '=' ? '' : response;
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return null;
  const fields = Buffer.from(text, 'base64').toString('utf8').split('\0');
  if (fields.length !== 3) return null;
  const [authzid, authcid, password] = fields as [string, string, string];
  if (authzid === '' || authzid === authcid) return { identity: loginIdentity(authcid), password };
  // Acting for another identity: only for a list archive, as the member itself.
  return { identity: { member: authcid, list: authzid }, password };
}

/** The directory's answer for `identity`: null for every kind of failure alike. */
export async function authenticateIdentity(
  directory: DeviceDirectory,
  identity: LoginIdentity,
  password: string,
): Promise<AuthenticatedDevice | null> {
  if (identity.list === null) return directory.authenticate(identity.member, password);
  if (directory.authenticateArchive !== undefined) {
    return directory.authenticateArchive(identity.list, identity.member, password);
  }
  // No archives here: the credential is still checked, so the answer takes as long.
  await directory.authenticate(identity.member, password);
  return null;
}
