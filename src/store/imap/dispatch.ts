import type { CommandName } from './commands/types.js';
import type { Command } from './commands/types.js';
import { ImapError, toImapError } from './errors.js';
import {
  handleCapability,
  handleEnable,
  handleId,
  handleLogout,
  handleNamespace,
  handleNoop,
} from './handlers/any.js';
import { handleAuthenticate, handleLogin, handleStartTls } from './handlers/auth.js';
import { handleFetch } from './handlers/fetch.js';
import { handleIdle } from './handlers/idle.js';
import { handleAppend } from './handlers/append.js';
import {
  handleCreate,
  handleDelete,
  handleRename,
  handleStatus,
  handleSubscribe,
} from './handlers/mailboxes.js';
import { handleListCommand } from './handlers/list.js';
import { handleSearch } from './handlers/search.js';
import { handleSort, handleThread } from './handlers/sort.js';
import {
  handleCheck,
  handleClose,
  handleExpunge,
  handleSelect,
  handleUnselect,
} from './handlers/select.js';
import { handleCopy, handleMove, handleStore } from './handlers/store.js';
import type { OkReply } from './handlers/types.js';
import { sanitized } from './commands/types.js';
import type { Session, SessionState } from './session.js';
import type { CommandResult } from './metrics.js';

type AnyHandler = (s: Session, cmd: never) => Promise<OkReply | void>;

const ANY: SessionState[] = ['not-authenticated', 'authenticated', 'selected'];
const NOT_AUTH: SessionState[] = ['not-authenticated'];
const AUTH: SessionState[] = ['authenticated', 'selected'];
const SELECTED: SessionState[] = ['selected'];

/** The one dispatch table: which states allow a command (RFC 3501 §6) and who handles it. */
const HANDLERS: Record<CommandName, { states: SessionState[]; handler: AnyHandler }> = {
  CAPABILITY: { states: ANY, handler: handleCapability },
  NOOP: { states: ANY, handler: handleNoop },
  LOGOUT: { states: ANY, handler: handleLogout },
  ID: { states: ANY, handler: handleId },
  STARTTLS: { states: NOT_AUTH, handler: handleStartTls },
  LOGIN: { states: NOT_AUTH, handler: handleLogin },
  AUTHENTICATE: { states: NOT_AUTH, handler: handleAuthenticate },
  ENABLE: { states: AUTH, handler: handleEnable },
  NAMESPACE: { states: AUTH, handler: handleNamespace },
  SELECT: { states: AUTH, handler: handleSelect },
  EXAMINE: { states: AUTH, handler: handleSelect },
  CREATE: { states: AUTH, handler: handleCreate },
  DELETE: { states: AUTH, handler: handleDelete },
  RENAME: { states: AUTH, handler: handleRename },
  SUBSCRIBE: { states: AUTH, handler: handleSubscribe },
  UNSUBSCRIBE: { states: AUTH, handler: handleSubscribe },
  LIST: { states: AUTH, handler: handleListCommand },
  LSUB: { states: AUTH, handler: handleListCommand },
  STATUS: { states: AUTH, handler: handleStatus },
  APPEND: { states: AUTH, handler: handleAppend },
  IDLE: { states: AUTH, handler: handleIdle },
  CHECK: { states: SELECTED, handler: handleCheck },
  CLOSE: { states: SELECTED, handler: handleClose },
  UNSELECT: { states: SELECTED, handler: handleUnselect },
  EXPUNGE: { states: SELECTED, handler: handleExpunge },
  SEARCH: { states: SELECTED, handler: handleSearch },
  SORT: { states: SELECTED, handler: handleSort },
  THREAD: { states: SELECTED, handler: handleThread },
  FETCH: { states: SELECTED, handler: handleFetch },
  STORE: { states: SELECTED, handler: handleStore },
  COPY: { states: SELECTED, handler: handleCopy },
  MOVE: { states: SELECTED, handler: handleMove },
};

/** Commands during which EXPUNGE must not be sent when they address by sequence number (RFC 3501 §7.4.1). */
const NO_EXPUNGE = new Set<CommandName>(['FETCH', 'STORE', 'SEARCH', 'SORT', 'THREAD']);

/**
 * Runs one command and writes its tagged reply. This is the one place errors become
 * replies: an ImapError goes out as it is, a storage error through `toImapError`,
 * anything else is logged and answered `NO [SERVERBUG]` with no detail.
 * Returns the status sent, so the caller can count BADs.
 */
export async function execute(s: Session, cmd: Command): Promise<CommandResult> {
  const result = await run(s, cmd);
  s.config.metrics?.commands.inc({ command: cmd.name, result });
  return result;
}

async function run(s: Session, cmd: Command): Promise<CommandResult> {
  const out = s.out;
  const entry = HANDLERS[cmd.name];
  if (!entry.states.includes(s.state)) {
    out.line(`${cmd.tag} BAD ${cmd.name} not allowed now`);
    return 'BAD';
  }
  try {
    const reply = (await entry.handler(s, cmd as never)) ?? {};
    if (s.state === 'selected') await s.flushUpdates(!(NO_EXPUNGE.has(cmd.name) && !cmd.uid));
    const code = reply.code === undefined ? '' : `[${reply.code}] `;
    out.line(`${cmd.tag} OK ${code}${reply.text ?? `${cmd.name} completed`}`);
    if (cmd.name === 'STARTTLS') {
      await out.flush();
      await s.startTls();
    }
    return 'OK';
  } catch (err) {
    let e = toImapError(err);
    if (e === null) {
      s.config.logger.error({ err, session: s.id, command: sanitized(cmd) }, 'imap command failed');
      e = new ImapError('NO', 'Internal error', 'SERVERBUG');
    } else if (e.code === 'SERVERBUG') {
      s.config.logger.error({ err, session: s.id, command: sanitized(cmd) }, 'imap storage error');
    }
    if (s.state === 'selected' && e.status !== 'BYE')
      await s.flushUpdates(!(NO_EXPUNGE.has(cmd.name) && !cmd.uid)).catch(() => undefined);
    const code = e.code === undefined ? '' : `[${e.code}] `;
    if (e.status === 'BYE') out.line(`* BYE ${code}${e.text}`);
    else out.line(`${cmd.tag} ${e.status} ${code}${e.text}`);
    return e.status;
  }
}
