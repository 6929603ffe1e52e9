/**
 * The capabilities a client may see: only what the proxy relays correctly. Everything
 * that would let bytes bypass the rewriter (COMPRESS, BINARY, URLAUTH, CATENATE), push
 * unsolicited data the proxy does not parse (NOTIFY), or re-authenticate upstream
 * (AUTH=, LOGIN-REFERRALS, UNAUTHENTICATE) is dropped. An allow-list, not a deny-list:
 * an extension the proxy has not been checked against stays hidden.
 */
const ALLOWED = new Set([
  'IMAP4REV1',
  'IMAP4REV2',
  'LITERAL+',
  'LITERAL-',
  'ID',
  'ENABLE',
  'IDLE',
  'NAMESPACE',
  'UIDPLUS',
  'MOVE',
  'CHILDREN',
  'UNSELECT',
  'SPECIAL-USE',
  'CREATE-SPECIAL-USE',
  'LIST-EXTENDED',
  'LIST-STATUS',
  'ESEARCH',
  'ESORT',
  'SEARCHRES',
  'SORT',
  'SORT=DISPLAY',
  'CONDSTORE',
  'QRESYNC',
  'WITHIN',
  'CONTEXT=SEARCH',
  'CONTEXT=SORT',
  'I18NLEVEL=1',
  'QUOTA',
  'STATUS=SIZE',
  'SAVEDATE',
  'OBJECTID',
  'UTF8=ACCEPT',
  'MULTIAPPEND',
  'XLIST',
  'SASL-IR',
]);

const ALLOWED_PREFIXES = ['THREAD=', 'APPENDLIMIT', 'QUOTA=', 'SPECIAL-USE'];

/** Filters a list of capability atoms (in their original spelling). */
export function filterCapabilities(atoms: readonly string[], authenticated: boolean): string[] {
  return atoms.filter((atom) => {
    const upper = atom.toUpperCase();
    if (authenticated && upper === 'SASL-IR') return false;
    return ALLOWED.has(upper) || ALLOWED_PREFIXES.some((prefix) => upper.startsWith(prefix));
  });
}

const CAPABILITY_CODE = /\[CAPABILITY ([^\]]*)\]/i;

/**
 * Rewrites one response line (without CRLF): `* CAPABILITY …` or any status response
 * carrying a `[CAPABILITY …]` code. Other lines come back unchanged.
 */
export function filterCapabilityLine(line: string): string {
  const untagged = /^\* CAPABILITY( .*)?$/i.exec(line);
  if (untagged !== null) {
    const atoms = (untagged[1] ?? '').trim().split(/ +/).filter(Boolean);
    return ['* CAPABILITY', ...filterCapabilities(atoms, true)].join(' ');
  }
  return line.replace(CAPABILITY_CODE, (_, list: string) => {
    const atoms = list.trim().split(/ +/).filter(Boolean);
    return `[CAPABILITY ${filterCapabilities(atoms, true).join(' ')}]`;
  });
}
