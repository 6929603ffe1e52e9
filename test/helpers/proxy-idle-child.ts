/**
 * The IMAP proxy alone in a child process, for measuring its memory per connection
 * without the client's sockets in the same heap (bench/proxy.bench.ts). Configuration is
 * one JSON argument; every line on stdin answers with one JSON line of memory figures
 * (after a full GC when node runs with --expose-gc).
 *
 * The directory accepts one address with one password and gives an empty key set:
 * enough for idle sessions, which fetch nothing.
 */
import { createInterface } from 'node:readline';
import { startImapProxy } from '../../src/imap/index.js';
import type { DeviceDirectory } from '../../src/imap/ports.js';

interface ChildConfig {
  key: string;
  cert: string;
  upstreamPort: number;
  master: { user: string; password: string };
  address: string;
  password: string;
}

const config = JSON.parse(process.argv[2] ?? '{}') as ChildConfig;
const directory: DeviceDirectory = {
  async authenticate(address, password) {
    if (address !== config.address || password !== config.password) return null;
    return {
      address,
      deviceId: 'bench',
      keys: { deviceId: new Uint8Array(10), wrapEncoding: 'absent', keys: new Map() },
    };
  },
  onDeviceRevoked: () => () => undefined,
};
const proxy = await startImapProxy({
  host: '127.0.0.1',
  port: 0,
  tls: { key: config.key, cert: config.cert },
  upstream: { host: '127.0.0.1', port: config.upstreamPort, tls: false },
  master: config.master,
  directory,
  // The bench opens 1,000 connections from one address: above the default caps every
  // one would be refused (and a refused one never answers the login that follows).
  limits: { maxConnections: 5000, maxConnectionsPerIp: 5000, maxSessionsPerUserIp: 5000 },
});
process.stdout.write(`${JSON.stringify({ port: proxy.ports.tls })}\n`);

const gc = (globalThis as { gc?: () => void }).gc;
for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'exit') break;
  gc?.();
  const usage = process.memoryUsage();
  process.stdout.write(
    `${JSON.stringify({ rss: usage.rss, heap: usage.heapUsed, external: usage.external, sessions: proxy.sessionCount() })}\n`,
  );
}
await proxy.close();
process.exit(0);
