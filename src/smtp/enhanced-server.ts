/**
 * smtp-server derives the enhanced status code (RFC 3463) from the reply code alone, so
 * every 550 from a hook goes out as 5.1.1 — wrong for "relaying denied" (5.7.1). Our
 * replies carry their own code as the first word of the text (reply.ts); for those the
 * derived code is left out. Patched per connection, not on the shared prototype, so no
 * other smtp-server in the process (the embedded store's LMTP) is affected.
 */
import type { Socket } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { ENHANCED_PREFIX } from './reply.js';

type ConnectArgs = Parameters<SMTPServer['connect']>;

export class EnhancedCodeSmtpServer extends SMTPServer {
  override connect(socket: ConnectArgs[0] | Socket, socketOptions?: ConnectArgs[1]): void {
    super.connect(socket, socketOptions);
    let newest: (typeof this.connections extends Set<infer C> ? C : never) | undefined;
    for (const connection of this.connections) newest = connection;
    if (newest === undefined) return;
    const send = newest.send.bind(newest);
    newest.send = (code, data, context) =>
      send(code, data, typeof data === 'string' && ENHANCED_PREFIX.test(data) ? false : context);
  }
}
