import type { AppendResult } from '../../backend.js';
import { formatSet } from '../commands/sequence.js';
import type { AppendMessage } from '../commands/types.js';
import type { Session } from '../session.js';
import { tryCreate, userOf } from './mailboxes.js';
import type { Cmd, OkReply } from './types.js';

/**
 * APPEND (RFC 3501 §6.3.11) with APPENDUID (RFC 4315) and MULTIAPPEND (RFC 3502): the
 * messages are stored one after another; if one fails, those already stored are
 * expunged again before the NO, so the command stores all or none (§3: "the server MUST
 * NOT append any of the messages"). A session that has the mailbox selected may see
 * them arrive and leave (EXISTS, then EXPUNGE).
 */
export async function handleAppend(s: Session, cmd: Cmd<'APPEND'>): Promise<OkReply> {
  const user = userOf(s);
  const messages: AppendMessage[] = [cmd, ...cmd.more];
  const stored: AppendResult[] = [];
  try {
    for (const m of messages) {
      const flags = m.flags.filter((f) => f !== '\\Recent');
      const options = m.date === null ? { flags } : { flags, internalDate: m.date };
      stored.push(await user.append(cmd.mailbox, m.message, options).catch(tryCreate));
    }
  } catch (err) {
    if (stored.length > 0)
      await rollBack(s, cmd.mailbox, stored).catch((rollbackErr: unknown) =>
        s.config.logger.error(
          { err: rollbackErr, session: s.id, stored: stored.length },
          'MULTIAPPEND roll-back failed: some messages of a refused APPEND stay stored',
        ),
      );
    throw err;
  }
  const uidValidity = (stored[0] as AppendResult).uidValidity;
  const uids = stored.map((r) => r.uid);
  // A sorted set when the UIDs ascend, as they do; otherwise listed in append order (RFC 4315 append-uid).
  const set = uids.every((u, i) => i === 0 || u > (uids[i - 1] as number))
    ? formatSet(uids)
    : uids.join(',');
  return { code: `APPENDUID ${uidValidity} ${set}`, text: 'APPEND completed' };
}

async function rollBack(s: Session, mailbox: string, stored: AppendResult[]): Promise<void> {
  const handle = await userOf(s).openMailbox(mailbox, { readOnly: false });
  try {
    const uids = stored.map((r) => r.uid);
    await handle.setFlags(uids, 'add', ['\\Deleted']);
    await handle.expunge(uids);
  } finally {
    await handle.close();
  }
}
