/**
 * smtp-server derives the enhanced status code (RFC 3463) from the reply code alone, so
 * every 550 from a hook goes out as 5.1.1 — wrong for "relaying denied" (5.7.1). Our
 * replies carry their own code as the first word of the text (reply.ts); for those the
 * derived code is left out. Patched per connection, not on the shared prototype, so no
 * other smtp-server in the process (the embedded store's LMTP) is affected.
 *
 * DATA is parsed by data-stream.ts (FastDataSmtpServer) instead of smtp-server's per-byte loop.
 *
 * It also gives the MX what smtp-server has no option for: the number of connections
 * from one address (the per-address limit) and a per-connection idle timeout, so that
 * the wait for commands can be shorter than the wait inside DATA.
 */
import type { Socket } from 'node:net';
import type { SMTPServer, SMTPServerSession } from 'smtp-server';
import { FastDataSmtpServer } from './data-stream.js';
import { ENHANCED_PREFIX } from './reply.js';

type ConnectArgs = Parameters<SMTPServer['connect']>;

/** The parts of smtp-server's SMTPConnection used here (it has no exported type). */
interface Connection {
  remoteAddress: string;
  session: SMTPServerSession;
  _socket: Socket;
}

export class EnhancedCodeSmtpServer extends FastDataSmtpServer {
  override connect(socket: ConnectArgs[0] | Socket, socketOptions?: ConnectArgs[1]): void {
    super.connect(socket, socketOptions);
    let newest: (typeof this.connections extends Set<infer C> ? C : never) | undefined;
    for (const connection of this.connections) newest = connection;
    if (newest === undefined) return;
    const send = newest.send.bind(newest);
    newest.send = (code, data, context) =>
      send(code, data, typeof data === 'string' && ENHANCED_PREFIX.test(data) ? false : context);
  }

  /** Open connections from `address`, the one asking included. */
  connectionsFrom(address: string): number {
    let count = 0;
    for (const connection of this.connections as Set<Connection>)
      if (connection.remoteAddress === address) count += 1;
    return count;
  }

  /**
   * Sets the idle timeout of the session's connection. smtp-server re-arms the timer with
   * its own `socketTimeout` only after it fired, so the duration set here stays until the
   * next call.
   */
  setIdleTimeout(session: SMTPServerSession, ms: number): void {
    for (const connection of this.connections as Set<Connection>)
      if (connection.session === session) connection._socket.setTimeout(ms);
  }
}
