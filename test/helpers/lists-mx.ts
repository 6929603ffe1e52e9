/**
 * The list tests' MX: the real MX with the key-store directory (lists on, archive on),
 * the recrypt encryptor and LMTP delivery into the read path's embedded store; a raw
 * SMTP exchange to see exactly which reply a post gets at RCPT and at DATA.
 */
import pino from 'pino';
import { keyStoreDirectory } from '../../src/smtp/adapters/keystore-directory.js';
import { recryptEncryptor } from '../../src/smtp/adapters/recrypt-encryptor.js';
import { lmtpDelivery } from '../../src/smtp/lmtp-delivery.js';
import { type MxServer, startMxServer } from '../../src/smtp/mx-server.js';
import type { KeyStore } from '../../src/keystore/index.js';
import { fixtureDnsResolver } from './smtp-fixture-dns.js';
import { SmtpWire } from './smtp-wire.js';

export async function startListMx(
  keyStore: KeyStore,
  lmtpPort: number,
  domain: string,
): Promise<MxServer> {
  return startMxServer({
    port: 0,
    banner: 'lists',
    hostname: `mx.${domain}`,
    maxSize: 1024 * 1024,
    localDomains: [domain],
    directory: keyStoreDirectory({
      keyStore,
      localDomains: [domain],
      listArchive: true,
      listArchiveUrl: (list) => `imap://${encodeURIComponent(list)}@imap.${domain}/INBOX`,
    }),
    encryptor: recryptEncryptor({ hideSubject: false }),
    delivery: lmtpDelivery({ host: '127.0.0.1', port: lmtpPort, timeoutMs: 10_000 }),
    dnsResolver: fixtureDnsResolver(),
    logger: pino({ enabled: false }),
  });
}

/** One SMTP transaction by hand; returns the RCPT reply and, if it was 250, the DATA reply. */
export async function post(
  port: number,
  from: string,
  to: string,
  message: Buffer,
): Promise<{ rcpt: string; data?: string }> {
  const wire = await SmtpWire.open(port);
  try {
    await wire.reply();
    await wire.command('EHLO sender.example');
    await wire.command(`MAIL FROM:<${from}>`);
    const rcpt = await wire.command(`RCPT TO:<${to}>`);
    if (!rcpt.startsWith('250')) return { rcpt };
    await wire.command('DATA');
    const body = message.toString('latin1').replace(/\r\n\./g, '\r\n..');
    const data = await wire.command(
      Buffer.from(`${body}${body.endsWith('\r\n') ? '' : '\r\n'}.`, 'latin1'),
    );
    await wire.command('QUIT');
    return { rcpt, data };
  } finally {
    wire.close();
  }
}
