import { createHash, timingSafeEqual } from 'node:crypto';
import { ImapError } from '../errors.js';
import type { Session } from '../session.js';
import type { Cmd, OkReply } from './types.js';

function same(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a, 'utf8').digest();
  const hb = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(ha, hb);
}

const FAILED = (): ImapError =>
  new ImapError('NO', 'Authentication failed', 'AUTHENTICATIONFAILED');

/**
 * Who a credential logs in as, or null. The master credential with an authzid logs in
 * as that user (Dovecot master users). A user's own login (no authzid) is refused unless
 * `allowUserLogin` is set; then the master password is that login's password too: this
 * store keeps no per-user passwords, and the flag exists for clients such as mbsync that
 * cannot send an authzid.
 */
function authorize(s: Session, authzid: string, authcid: string, password: string): string | null {
  const { master, allowUserLogin } = s.config;
  // RFC 4616: an authzid equal to the authcid is the same as none (cyrus-sasl clients send it so).
  if (authzid !== '' && authzid !== authcid) {
    if (authcid === master.user && same(password, master.password)) return authzid;
    return null;
  }
  if (allowUserLogin && authcid !== master.user && same(password, master.password)) return authcid;
  return null;
}

async function login(s: Session, user: string | null): Promise<OkReply> {
  if (user === null) throw FAILED();
  if (!(await s.config.store.userExists(user)))
    throw new ImapError('NO', 'Authorization failed', 'AUTHORIZATIONFAILED');
  s.user = await s.config.store.openUser(user);
  s.state = 'authenticated';
  return { code: `CAPABILITY ${s.capabilities().join(' ')}`, text: 'Logged in' };
}

/** LOGIN (RFC 3501 §6.2.3): only for users' own logins, and only when allowed. */
export async function handleLogin(s: Session, cmd: Cmd<'LOGIN'>): Promise<OkReply> {
  return login(s, authorize(s, '', cmd.user, cmd.password));
}

/**
 * AUTHENTICATE PLAIN (RFC 3501 §6.2.2, RFC 4616) with the initial response inline
 * (SASL-IR, RFC 4959) or after a `+` continuation.
 */
export async function handleAuthenticate(s: Session, cmd: Cmd<'AUTHENTICATE'>): Promise<OkReply> {
  if (cmd.mechanism !== 'PLAIN')
    throw new ImapError('NO', 'Unsupported authentication mechanism', 'CANNOT');
  let response = cmd.initial;
  if (response === null) {
    s.out.line('+ ');
    await s.out.flush();
    const line = await s.input.readLine();
    if (line === null || line === 'too-long')
      throw new ImapError('BAD', 'Authentication exchange failed');
    response = line.toString('latin1');
    if (response === '*') throw new ImapError('BAD', 'Authentication cancelled');
  }
  if (response !== '=' && !/^[A-Za-z0-9+/]*={0,2}$/.test(response))
    throw new ImapError('BAD', 'Invalid base64');
  const decoded = response === '=' ? '' : Buffer.from(response, 'base64').toString('utf8');
  const fields = decoded.split('\u0000');
  if (fields.length !== 3) throw FAILED();
  const [authzid, authcid, password] = fields as [string, string, string];
  return login(s, authorize(s, authzid, authcid, password));
}

/** STARTTLS (RFC 3501 §6.2.1): the OK goes out in clear, then the handshake. */
export async function handleStartTls(s: Session): Promise<OkReply | void> {
  if (!s.config.tlsAvailable || s.secure) throw new ImapError('BAD', 'STARTTLS not available');
  return { text: 'Begin TLS negotiation now' };
}
