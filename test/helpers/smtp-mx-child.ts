/**
 * The MX as a separate process, so that a test can kill -9 it under load. Configured by
 * the MX_CHILD environment variable (JSON: port, lmtpPort, redisPort, dir, localDomain);
 * prints "READY <port>" once listening. Run with `node --import tsx`.
 */
import { recryptEncryptor } from '../../src/smtp/adapters/recrypt-encryptor.js';
import { lmtpDelivery } from '../../src/smtp/lmtp-delivery.js';
import { startMxServer } from '../../src/smtp/mx-server.js';
import { fixtureDnsResolver } from './smtp-fixture-dns.js';
import { redisDirectory } from './smtp-redis-directory.js';

interface ChildConfig {
  port: number;
  lmtpPort: number;
  redisPort: number;
  dir: string;
  localDomain: string;
}

const config = JSON.parse(process.env.MX_CHILD ?? '{}') as ChildConfig;
const mx = await startMxServer({
  port: config.port,
  banner: 'recrypt child MX',
  hostname: 'mx.gateway.test',
  maxSize: 10 * 1024 * 1024,
  localDomains: [config.localDomain],
  directory: redisDirectory(config.redisPort, [config.localDomain]),
  encryptor: recryptEncryptor(),
  delivery: lmtpDelivery({ host: '127.0.0.1', port: config.lmtpPort, timeoutMs: 10_000 }),
  dnsResolver: fixtureDnsResolver(),
  maxClients: 200,
});
process.stdout.write(`READY ${mx.port}\n`);
process.on('SIGTERM', () => {
  void mx.close().then(() => process.exit(0));
});
