import { parseDateTime } from './dates.js';
import type { CommandBody, StatusItem } from './types.js';
import type { Tokens } from './tokens.js';

type OneMailbox = 'SELECT' | 'EXAMINE' | 'CREATE' | 'DELETE' | 'SUBSCRIBE' | 'UNSUBSCRIBE';

/**
 * select = "SELECT" SP mailbox ; examine = "EXAMINE" SP mailbox ; create = "CREATE" SP mailbox
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
    const reference = t.mailbox();
    t.sp();
    const pattern = t.listMailbox();
    t.end();
    return { name, reference, pattern };
  };
}

const STATUS_ITEMS: ReadonlySet<string> = new Set([
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
  t.char('(');
  const items: StatusItem[] = [];
  do {
    const item = t.atom().toUpperCase();
    if (!STATUS_ITEMS.has(item)) t.fail('status-att');
    items.push(item as StatusItem);
  } while (t.trySp());
  t.char(')');
  t.end();
  return { name: 'STATUS', mailbox, items };
}

/** append = "APPEND" SP mailbox [SP flag-list] [SP date-time] SP literal */
export function parseAppend(t: Tokens): CommandBody {
  t.sp();
  const mailbox = t.mailbox();
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
  const message = t.literal();
  t.end();
  return { name: 'APPEND', mailbox, flags, date, message };
}
