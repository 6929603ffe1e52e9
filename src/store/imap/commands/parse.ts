import { ParseError } from '../errors.js';
import { parseFetch } from './fetch.js';
import {
  parseAppend,
  parseList,
  parseOneMailbox,
  parseRename,
  parseSelect,
  parseStatus,
} from './mailbox.js';
import { parseSearch } from './search.js';
import { parseSort, parseThread } from './sort.js';
import { parseAuthenticate, parseEnable, parseId, parseLogin, parseNoArgs } from './simple.js';
import { parseCopyMove, parseExpunge, parseStore } from './store.js';
import { Tokens } from './tokens.js';
import type { Command, CommandBody } from './types.js';

type Parser = (t: Tokens, uid: boolean) => CommandBody;

const PARSERS: Record<string, Parser> = {
  CAPABILITY: parseNoArgs('CAPABILITY'),
  NOOP: parseNoArgs('NOOP'),
  LOGOUT: parseNoArgs('LOGOUT'),
  STARTTLS: parseNoArgs('STARTTLS'),
  CHECK: parseNoArgs('CHECK'),
  CLOSE: parseNoArgs('CLOSE'),
  UNSELECT: parseNoArgs('UNSELECT'),
  IDLE: parseNoArgs('IDLE'),
  NAMESPACE: parseNoArgs('NAMESPACE'),
  LOGIN: parseLogin,
  AUTHENTICATE: parseAuthenticate,
  ENABLE: parseEnable,
  ID: parseId,
  SELECT: parseSelect('SELECT'),
  EXAMINE: parseSelect('EXAMINE'),
  CREATE: parseOneMailbox('CREATE'),
  DELETE: parseOneMailbox('DELETE'),
  SUBSCRIBE: parseOneMailbox('SUBSCRIBE'),
  UNSUBSCRIBE: parseOneMailbox('UNSUBSCRIBE'),
  RENAME: parseRename,
  LIST: parseList('LIST'),
  LSUB: parseList('LSUB'),
  STATUS: parseStatus,
  APPEND: parseAppend,
  SEARCH: parseSearch,
  SORT: parseSort,
  THREAD: parseThread,
  FETCH: parseFetch,
  STORE: parseStore,
  COPY: parseCopyMove('COPY'),
  MOVE: parseCopyMove('MOVE'),
  EXPUNGE: parseExpunge,
};

/** Commands that take a `UID` prefix (RFC 3501 uid = "UID" SP (copy / fetch / search / store); MOVE, EXPUNGE from 6851/4315; SORT, THREAD from 5256). */
const UID_COMMANDS = new Set([
  'COPY',
  'MOVE',
  'FETCH',
  'SEARCH',
  'STORE',
  'EXPUNGE',
  'SORT',
  'THREAD',
]);

/** A command whose tag could be read, so a BAD can be tagged. */
export class TaggedParseError extends ParseError {
  constructor(
    readonly tag: string,
    readonly inner: ParseError,
  ) {
    super(inner.message);
  }
}

/**
 * command = tag SP (command-any / command-auth / command-nonauth / command-select) CRLF
 * `line` is one complete command without its final CRLF, literals inline. Throws
 * ParseError (untagged BAD) or TaggedParseError (tagged BAD).
 */
export function parseCommand(line: Buffer): Command {
  const t = new Tokens(line);
  const tag = t.tag();
  try {
    t.sp();
    let name = t.atom().toUpperCase();
    let uid = false;
    if (name === 'UID') {
      uid = true;
      t.sp();
      name = t.atom().toUpperCase();
      if (!UID_COMMANDS.has(name))
        t.fail('COPY, FETCH, MOVE, SEARCH, SORT, STORE, THREAD or EXPUNGE after UID');
    }
    const parser = PARSERS[name];
    if (parser === undefined) throw new ParseError('Unknown command');
    return { ...parser(t, uid), tag, uid };
  } catch (err) {
    if (err instanceof ParseError) throw new TaggedParseError(tag, err);
    throw err;
  }
}
