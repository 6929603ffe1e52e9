/**
 * Is the mail store there? Connects to an IMAP or LMTP endpoint and waits for its
 * greeting, then says goodbye. Used once at start (a gateway whose Dovecot is
 * unreachable refuses to start, naming it) and by /readyz on every call.
 */
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

export type ProbeTarget = {
  /** For messages: "mailStore.imap". */
  name: string;
  tls?: boolean;
  protocol: 'imap' | 'lmtp';
} & ({ host: string; port: number } | { path: string });

const GREETING = { imap: /^\* (OK|PREAUTH)/, lmtp: /^220[ -]/ };
const GOODBYE = { imap: 'p LOGOUT\r\n', lmtp: 'QUIT\r\n' };

/** Resolves when the endpoint greets; rejects with a one-line reason otherwise. */
export function probeGreeting(target: ProbeTarget, timeoutMs = 5000): Promise<void> {
  const where = `${target.name} ${'path' in target ? target.path : `${target.host}:${target.port}`}`;
  return new Promise((resolve, reject) => {
    // The probe sends no credentials, so it does not verify the certificate: the proxy's
    // own upstream connection does that.
    const socket: Socket =
      'path' in target
        ? tcpConnect({ path: target.path })
        : target.tls
          ? tlsConnect({
              host: target.host,
              port: target.port,
              rejectUnauthorized: false,
              servername: target.host,
            })
          : tcpConnect({ host: target.host, port: target.port });
    let buffer = '';
    const timer = setTimeout(() => fail(new Error('no greeting (timeout)')), timeoutMs);
    const done = (error?: Error) => {
      clearTimeout(timer);
      socket.removeAllListeners('data');
      socket.on('error', () => undefined);
      if (error) {
        socket.destroy();
        reject(new Error(`${where}: ${error.message}`));
      } else {
        socket.end(GOODBYE[target.protocol]);
        setTimeout(() => socket.destroy(), 1000).unref();
        resolve();
      }
    };
    const fail = (error: Error) => done(error);
    socket.once('error', (error: NodeJS.ErrnoException) =>
      fail(new Error(error.code ?? error.message)),
    );
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      const end = buffer.indexOf('\n');
      if (end < 0) {
        if (buffer.length > 4096) fail(new Error('unexpected greeting'));
        return;
      }
      const line = buffer.slice(0, end).trim();
      if (GREETING[target.protocol].test(line)) done();
      else fail(new Error(`unexpected greeting: ${line.slice(0, 80)}`));
    });
  });
}
