/**
 * Mail addresses as the profile part accepts them: an RFC 5321 Mailbox whose local part
 * is a dot-atom (no quoted strings, ASCII only) and whose domain is an ASCII host name
 * (IDNs in their xn-- A-label form; no address literals). That is every address the
 * gateway itself issues; anything odder is refused rather than half-supported, because an
 * address ends up in URLs and DNS owner names where a lax parser becomes an injection.
 * Hand-written because no installed library validates exactly this subset.
 */
import { ProfileError } from './errors.js';

export interface ParsedAddress {
  /** The local part exactly as given (case kept: RFC 8162 hashes it as is). */
  local: string;
  /** The domain in lower case. */
  domain: string;
}

// RFC 5322 atext.
const ATOM = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+";
const DOT_ATOM = new RegExp(`^${ATOM}(?:\\.${ATOM})*$`);
const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/** Parses and checks an address; throws ProfileError('invalid-argument') naming the fault. */
export function parseAddress(address: string): ParsedAddress {
  if (typeof address !== 'string' || address.length === 0 || address.length > 254) {
    throw new ProfileError('invalid-argument', 'address: empty or longer than 254 characters');
  }
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) {
    throw new ProfileError('invalid-argument', 'address: needs a local part, "@" and a domain');
  }
  const local = address.slice(0, at);
  const domain = address.slice(at + 1).toLowerCase();
  if (local.length > 64 || !DOT_ATOM.test(local)) {
    throw new ProfileError(
      'invalid-argument',
      'address: local part is not a dot-atom of at most 64 characters',
    );
  }
  if (domain.length > 253 || !domain.split('.').every((label) => LABEL.test(label))) {
    throw new ProfileError('invalid-argument', 'address: domain is not an ASCII host name');
  }
  return { local, domain };
}

/**
 * The form used for lookups and comparisons: the whole address in ASCII lower case, as
 * the key store keys users. Two addresses are the same profile iff these are equal.
 */
export function canonicalAddress(address: string): string {
  const { local, domain } = parseAddress(address);
  return `${local.toLowerCase()}@${domain}`;
}

export function isValidAddress(address: string): boolean {
  try {
    parseAddress(address);
    return true;
  } catch {
    return false;
  }
}
