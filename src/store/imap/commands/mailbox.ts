import { parseDateTime } from './dates.js';
import { parseSequenceSet } from './sequence.js';
import type {
  AppendMessage,
  CommandBody,
  ListOptions,
  QresyncParams,
  StatusItem,
} from './types.js';
import type { Tokens } from './tokens.js';

type OneMailbox = 'CREATE' | 'DELETE' | 'SUBSCRIBE' | 'UNSUBSCRIBE';

/**
 * select / examine = ("SELECT" / "EXAMINE") SP mailbox [select-params]      (RFC 7162 §7)
 * select-params  = SP "(" select-param *(SP select-param) ")"
 * select-param   = "CONDSTORE" / "QRESYNC" SP "(" uidvalidity SP mod-sequence-value
 *                  [SP known-uids] [SP seq-match-data] ")"
 * seq-match-data = "(" known-sequence-set SP known-uid-set ")"
 */
export function parseSelect(name: 'SELECT' | 'EXAMINE') {
  return (t: Tokens): CommandBody => {
    t.sp();
    const mailbox = t.mailbox();
    const out: CommandBody = { name, mailbox };
    if (t.trySp()) {
      t.char('(');
      do {
        if (t.tryKeyword('CONDSTORE') && out.condstore === undefined) out.condstore = true;
        else if (t.tryKeyword('QRESYNC') && out.qresync === undefined) out.qresync = qresync(t);
        else t.fail('select-param');
      } while (t.trySp());
      t.char(')');
    }
    t.end();
    return out;
  };
}

function qresync(t: Tokens): QresyncParams {
  t.sp();
  t.char('(');
  const uidValidity = t.nzNumber();
  t.sp();
  const params: QresyncParams = {
    uidValidity,
    modseq: t.modseq(),
    knownUids: null,
    seqMatch: null,
  };
  if (t.trySp()) {
    if (t.peek() !== 0x28) {
      params.knownUids = parseSequenceSet(t);
      if (!t.trySp()) {
        t.char(')');
        return params;
      }
    }
    t.char('(');
    const seqs = parseSequenceSet(t);
    t.sp();
    params.seqMatch = { seqs, uids: parseSequenceSet(t) };
    t.char(')');
  }
  t.char(')');
  return params;
}

/**
 * create = "CREATE" SP mailbox
 * delete = "DELETE" SP mailbox ; subscribe = "SUBSCRIBE" SP mailbox ; unsubscribe = "UNSUBSCRIBE" SP mailbox
 */
export function parseOneMailbox(name: OneMailbox) {
  return (t: Tokens): CommandBody => {
    t.sp();
    const mailbox = t.mailbox();
    t.end();
    return { name, mailbox };
  };
}

/** rename = "RENAME" SP mailbox SP mailbox */
export function parseRename(t: Tokens): CommandBody {
  t.sp();
  const from = t.mailbox();
  t.sp();
  const to = t.mailbox();
  t.end();
  return { name: 'RENAME', from, to };
}

/** list = "LIST" SP mailbox SP list-mailbox ; lsub = "LSUB" SP mailbox SP list-mailbox */
export function parseList(name: 'LIST' | 'LSUB') {
  return (t: Tokens): CommandBody => {
    t.sp();
    if (name === 'LIST' && t.peek() === 0x28) return parseListExtended(t);
    const reference = t.mailbox();
    t.sp();
    if (name === 'LIST' && t.peek() === 0x28) return parseListExtended(t, reference);
    const pattern = t.listMailbox();
    if (name === 'LIST' && t.trySp()) return parseListExtended(t, reference, [pattern]);
    t.end();
    return { name, reference, pattern };
  };
}

const SELECT_OPTS: ReadonlySet<string> = new Set([
  'SUBSCRIBED',
  'REMOTE',
  'RECURSIVEMATCH',
  'SPECIAL-USE',
]);

/**
 * list = "LIST" [SP list-select-opts] SP mailbox SP mbox-or-pat [SP list-return-opts]  (RFC 5258 §6)
 * list-select-opts = "(" [list-select-opt *(SP list-select-opt)] ")"
 * mbox-or-pat = list-mailbox / patterns ; patterns = "(" list-mailbox *(SP list-mailbox) ")"
 * list-return-opts = "RETURN" SP "(" [return-option *(SP return-option)] ")"
 * return-option = "SUBSCRIBED" / "CHILDREN" / "SPECIAL-USE" / "STATUS" SP "(" status-att *(SP status-att) ")"
 * Called at whichever point the command stops being a plain RFC 3501 LIST.
 */
function parseListExtended(t: Tokens, ref?: string, pats?: string[]): CommandBody {
  const select = new Set<string>();
  let reference = ref;
  if (reference === undefined) {
    t.char('(');
    if (!t.tryChar(')')) {
      do {
        const opt = t.atom().toUpperCase();
        // RFC 5258 §3: an unrecognised selection option is a BAD.
        if (!SELECT_OPTS.has(opt)) t.fail('list-select-opt');
        select.add(opt);
      } while (t.trySp());
      t.char(')');
    }
    t.sp();
    reference = t.mailbox();
    t.sp();
  }
  let patterns = pats;
  // With `pats` the caller has read the pattern and the space after it.
  let more = patterns !== undefined;
  if (patterns === undefined) {
    patterns = [];
    if (t.tryChar('(')) {
      do patterns.push(t.listMailbox());
      while (t.trySp());
      t.char(')');
    } else patterns.push(t.listMailbox());
    more = t.trySp();
  }
  const options: ListOptions = {
    patterns,
    selectSubscribed: select.has('SUBSCRIBED'),
    selectSpecialUse: select.has('SPECIAL-USE'),
    recursiveMatch: select.has('RECURSIVEMATCH'),
    returnSubscribed: false,
    returnStatus: null,
  };
  // RECURSIVEMATCH alone selects nothing it could modify (RFC 5258 §3).
  if (options.recursiveMatch && !options.selectSubscribed && !options.selectSpecialUse)
    t.fail('RECURSIVEMATCH with another selection option');
  if (more) {
    if (!t.tryKeyword('RETURN')) t.fail('RETURN');
    t.sp();
    t.char('(');
    if (!t.tryChar(')')) {
      do {
        const opt = t.atom().toUpperCase();
        if (opt === 'SUBSCRIBED') options.returnSubscribed = true;
        else if (opt === 'STATUS') {
          t.sp();
          options.returnStatus = statusAtts(t);
        } else if (opt !== 'CHILDREN' && opt !== 'SPECIAL-USE') t.fail('return-option');
      } while (t.trySp());
      t.char(')');
    }
  }
  t.end();
  return {
    name: 'LIST',
    reference,
    pattern: patterns[0] ?? '',
    extended: options,
  };
}

const STATUS_ITEMS: ReadonlySet<string> = new Set([
  'HIGHESTMODSEQ',
  'MESSAGES',
  'RECENT',
  'UIDNEXT',
  'UIDVALIDITY',
  'UNSEEN',
]);

/** status = "STATUS" SP mailbox SP "(" status-att *(SP status-att) ")" */
export function parseStatus(t: Tokens): CommandBody {
  t.sp();
  const mailbox = t.mailbox();
  t.sp();
  const items = statusAtts(t);
  t.end();
  return { name: 'STATUS', mailbox, items };
}

function statusAtts(t: Tokens): StatusItem[] {
  t.char('(');
  const items: StatusItem[] = [];
  do {
    const item = t.atom().toUpperCase();
    if (!STATUS_ITEMS.has(item)) t.fail('status-att');
    items.push(item as StatusItem);
  } while (t.trySp());
  t.char(')');
  return items;
}

/**
 * append = "APPEND" SP mailbox 1*append-message        (RFC 3502 MULTIAPPEND)
 * append-message = append-opts SP literal ; append-opts = [SP flag-list] [SP date-time]
 */
export function parseAppend(t: Tokens): CommandBody {
  t.sp();
  const mailbox = t.mailbox();
  const messages: AppendMessage[] = [];
  do {
    t.sp();
    let flags: string[] = [];
    let date: Date | null = null;
    if (t.peek() === 0x28) {
      flags = t.flagList();
      t.sp();
    }
    if (t.peek() === 0x22) {
      date = parseDateTime(t);
      t.sp();
    }
    messages.push({ flags, date, message: t.literal() });
  } while (!t.done);
  const [first, ...more] = messages as [AppendMessage, ...AppendMessage[]];
  return { name: 'APPEND', mailbox, ...first, more };
}
