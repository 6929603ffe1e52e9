import type { CommandBody } from './types.js';
import type { Tokens } from './tokens.js';

/**
 * command-any      = "CAPABILITY" / "LOGOUT" / "NOOP"
 * command-nonauth  = "STARTTLS"
 * command-auth     = "NAMESPACE"                       (RFC 2342)
 * command-select   = "CHECK" / "CLOSE" / "EXPUNGE" / "UNSELECT" (RFC 3691) / "IDLE" (RFC 2177)
 * Commands without arguments.
 */
export function parseNoArgs(
  name:
    | 'CAPABILITY'
    | 'NOOP'
    | 'LOGOUT'
    | 'STARTTLS'
    | 'CHECK'
    | 'CLOSE'
    | 'UNSELECT'
    | 'IDLE'
    | 'NAMESPACE',
) {
  return (t: Tokens): CommandBody => {
    t.end();
    return { name };
  };
}

/** login = "LOGIN" SP userid SP password ; userid = astring ; password = astring */
export function parseLogin(t: Tokens): CommandBody {
  t.sp();
  const user = t.astringText();
  t.sp();
  const password = t.astringText();
  t.end();
  return { name: 'LOGIN', user, password };
}

/**
 * authenticate = "AUTHENTICATE" SP auth-type [SP (base64 / "=")] *(CRLF base64)
 * The initial response is RFC 4959 SASL-IR; further lines are read by the handler.
 */
export function parseAuthenticate(t: Tokens): CommandBody {
  t.sp();
  const mechanism = t.atom().toUpperCase();
  let initial: string | null = null;
  if (t.trySp()) {
    initial = t.atom();
    if (initial !== '=' && !/^[A-Za-z0-9+/]+={0,2}$/.test(initial))
      t.fail('base64 initial response');
  }
  t.end();
  return { name: 'AUTHENTICATE', mechanism, initial };
}

/** enable = "ENABLE" 1*(SP capability)   (RFC 5161) */
export function parseEnable(t: Tokens): CommandBody {
  const capabilities: string[] = [];
  do {
    t.sp();
    capabilities.push(t.atom().toUpperCase());
  } while (!t.done);
  return { name: 'ENABLE', capabilities };
}

/**
 * id = "ID" SP id-params-list                        (RFC 2971)
 * id-params-list = "(" *(string SP nstring) ")" / nil
 */
export function parseId(t: Tokens): CommandBody {
  t.sp();
  if (t.tryKeyword('NIL')) {
    t.end();
    return { name: 'ID', params: null };
  }
  t.char('(');
  const params: Array<[string, string | null]> = [];
  while (!t.tryChar(')')) {
    if (params.length > 0) t.sp();
    const key = t.string().toString('utf8');
    t.sp();
    const value = t.tryKeyword('NIL') ? null : t.string().toString('utf8');
    params.push([key, value]);
    if (params.length > 30) t.fail('at most 30 ID fields');
  }
  t.end();
  return { name: 'ID', params };
}
