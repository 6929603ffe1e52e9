import { list, str } from '../serializer.js';
import type { Session } from '../session.js';
import type { Cmd, OkReply } from './types.js';

/** CAPABILITY (RFC 3501 §6.1.1) */
export async function handleCapability(s: Session): Promise<void> {
  s.out.line(`* CAPABILITY ${s.capabilities().join(' ')}`);
}

/** NOOP (§6.1.2): pending updates go out with the tagged reply. */
export async function handleNoop(): Promise<void> {}

/** LOGOUT (§6.1.3) */
export async function handleLogout(s: Session): Promise<void> {
  s.out.line('* BYE Logging out');
  await s.close();
}

/** ID (RFC 2971): the client's fields are accepted and not logged (they may identify a person's device). */
export async function handleId(s: Session, _cmd: Cmd<'ID'>): Promise<void> {
  s.out.line(
    `* ID ${list([str('name'), str('recrypt-store'), str('vendor'), str('recrypt-gateway')])}`,
  );
}

/**
 * ENABLE (RFC 5161): CONDSTORE and QRESYNC (RFC 7162 §3.1, §3.2.3; QRESYNC implies
 * CONDSTORE); `* ENABLED` lists those this command newly enabled.
 */
export async function handleEnable(s: Session, cmd: Cmd<'ENABLE'>): Promise<void> {
  const before = { CONDSTORE: s.condstore, QRESYNC: s.qresync };
  const enabled: string[] = [];
  for (const cap of cmd.capabilities) {
    if ((cap !== 'CONDSTORE' && cap !== 'QRESYNC') || before[cap] || enabled.includes(cap))
      continue;
    if (cap === 'CONDSTORE') s.enableCondstore();
    else s.enableQresync();
    enabled.push(cap);
  }
  s.out.line(['* ENABLED', ...enabled].join(' '));
}

/** NAMESPACE (RFC 2342): one personal namespace, no prefix, '/' delimiter. */
export async function handleNamespace(s: Session): Promise<OkReply> {
  s.out.line('* NAMESPACE (("" "/")) NIL NIL');
  return {};
}
