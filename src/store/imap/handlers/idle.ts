import { ImapError } from '../errors.js';
import type { Session } from '../session.js';

/**
 * IDLE (RFC 2177): changes from other sessions are sent as they happen (the session's
 * event listener flushes while `idling`), until the client sends DONE.
 */
export async function handleIdle(s: Session): Promise<void> {
  s.out.line('+ idling');
  await s.out.flush();
  s.idling = true;
  try {
    await s.flushUpdates(true);
    const line = await s.input.readLine();
    if (line === null) throw new ImapError('BYE', 'Connection closed');
    if (line === 'too-long' || line.toString('latin1').toUpperCase() !== 'DONE')
      throw new ImapError('BAD', 'Expected DONE');
  } finally {
    s.idling = false;
  }
}
