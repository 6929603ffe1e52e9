/**
 * Memory per idle connection through the proxy (bench/proxy.bench.ts), measured in a child
 * process running only the proxy (test/helpers/proxy-idle-child.ts), so the client's
 * sockets are not in the heap measured: 1,000 idle TLS connections, then 9 logged-in
 * sessions (Dovecot allows 10 per user and IP), each figure after a full GC.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import type { Dovecot } from '../test/helpers/dovecot.js';

const childScript = join(
  fileURLToPath(new URL('.', import.meta.url)),
  '..',
  'test',
  'helpers',
  'proxy-idle-child.ts',
);

export async function measureIdleMemory(
  tls: { key: string; cert: string },
  dovecot: Dovecot,
  address: string,
): Promise<void> {
  const user = { address };
  const child = spawn(
    process.execPath,
    [
      '--expose-gc',
      '--import',
      'tsx',
      childScript,
      JSON.stringify({
        key: tls.key,
        cert: tls.cert,
        upstreamPort: dovecot.imapPort,
        master: { user: dovecot.masterUser, password: dovecot.masterPassword },
        address: user.address,
        password: 'idle-bench',
      }),
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async (): Promise<Record<string, number>> =>
    JSON.parse((await lines.next()).value as string) as Record<string, number>;
  const measure = async (): Promise<Record<string, number>> => {
    child.stdin!.write('measure\n');
    return next();
  };
  const { port } = await next();
  const sockets: TLSSocket[] = [];
  const open = async (count: number, login: boolean): Promise<void> => {
    for (let i = 0; i < count; i++) {
      const socket = tlsConnect({ host: '127.0.0.1', port: port!, rejectUnauthorized: false });
      socket.on('error', () => undefined);
      sockets.push(socket);
      await new Promise<void>((resolve) => socket.once('data', () => resolve()));
      if (login) {
        socket.write(`l LOGIN ${user.address} idle-bench\r\n`);
        await new Promise<void>((resolve) => socket.once('data', () => resolve()));
      }
    }
  };
  const base = await measure();
  await open(1000, false);
  const idle = await measure();
  // Dovecot allows 10 sessions per user and IP: logged-in sessions are measured by tens.
  await open(9, true);
  const loggedIn = await measure();
  const kib = (bytes: number): string => (bytes / 1024).toFixed(1);
  console.log(
    `memory per idle TLS connection (proxy process alone, after GC): ${kib((idle.rss! - base.rss!) / 1000)} KiB RSS, ` +
      `${kib((idle.heap! + idle.external! - base.heap! - base.external!) / 1000)} KiB heap+external; ` +
      `per logged-in idle session (with its upstream connection): ${kib((loggedIn.rss! - idle.rss!) / 9)} KiB RSS ` +
      `(${idle.sessions} then ${loggedIn.sessions} sessions)`,
  );
  for (const socket of sockets) socket.destroy();
  child.stdin!.write('exit\n');
  await new Promise((resolve) => child.once('exit', resolve));
}
