/**
 * The list tests' MX: the real MX with the key-store directory and the real list services
 * (src/lists: post delivery with the archive, held posts, notices, unsubscribe), the
 * recrypt encryptor, LMTP delivery into the read path's embedded store, and the real
 * outbound queue, routed to the test's remote MX and back to this MX for our own domain.
 * A raw SMTP exchange shows exactly which reply a post gets at RCPT and at DATA.
 */
import { join } from 'node:path';
import pino from 'pino';
import type { KeyStore } from '../../src/keystore/index.js';
import { FileHeldPostStore } from '../../src/lists/held-posts.js';
import { noticeSender } from '../../src/lists/notices.js';
import type { ListServices } from '../../src/lists/ports.js';
import { listPostDelivery } from '../../src/lists/post-delivery.js';
import { configSchema } from '../../src/config/schema.js';
import { openOutboundQueue, type OutboundQueueHandle } from '../../src/outbound/index.js';
import { keyStoreDirectory } from '../../src/smtp/adapters/keystore-directory.js';
import { recryptEncryptor } from '../../src/smtp/adapters/recrypt-encryptor.js';
import { lmtpDelivery } from '../../src/smtp/lmtp-delivery.js';
import { type MxServer, startMxServer } from '../../src/smtp/mx-server.js';
import { freePort } from './ports.js';
import { fixtureDnsResolver } from './smtp-fixture-dns.js';
import { SmtpWire } from './smtp-wire.js';

export interface ListMx {
  port: number;
  mx: MxServer;
  queue: OutboundQueueHandle;
  held: FileHeldPostStore;
  lists: ListServices;
  close(): Promise<void>;
}

export async function startListMx(
  keyStore: KeyStore,
  lmtpPort: number,
  domain: string,
  options: {
    dir: string;
    routes?: Record<string, string>;
    maxSize?: number;
    /** The list delivery's after-store hook (points at delivery for the proxy). */
    onCopyStored?: (copy: { owners: string[]; prefix: Uint8Array }) => void;
  },
): Promise<ListMx> {
  const logger = pino({ enabled: false });
  const port = await freePort();
  const delivery = lmtpDelivery({ host: '127.0.0.1', port: lmtpPort, timeoutMs: 10_000 });
  const queue = await openOutboundQueue({
    dir: join(options.dir, 'queue'),
    config: configSchema.parse({
      outbound: {
        routes: { [domain]: `127.0.0.1:${port}`, ...options.routes },
        retryInitial: '1s',
        retryMax: '2s',
      },
    }).outbound,
    logger,
  });
  const held = new FileHeldPostStore({ dataDir: options.dir, logger });
  const lists: ListServices = {
    delivery: listPostDelivery({
      keyStore,
      delivery,
      queue,
      archive: true,
      logger,
      ...(options.onCopyStored === undefined ? {} : { onCopyStored: options.onCopyStored }),
    }),
    held,
    notices: noticeSender({ keyStore, delivery, queue, hostname: `mx.${domain}`, logger }),
    secret: 'list-test-secret',
  };
  const mx = await startMxServer({
    port,
    banner: 'lists',
    hostname: `mx.${domain}`,
    maxSize: options.maxSize ?? 1024 * 1024,
    localDomains: [domain],
    directory: keyStoreDirectory({
      keyStore,
      localDomains: [domain],
      lists,
      listArchiveUrl: (list) => `imap://${encodeURIComponent(list)}@imap.${domain}/INBOX`,
    }),
    encryptor: recryptEncryptor({ hideSubject: false }),
    delivery,
    dnsResolver: fixtureDnsResolver(),
    logger,
  });
  queue.start();
  return {
    port: mx.port,
    mx,
    queue,
    held,
    lists,
    async close() {
      await mx.close();
      await queue.close();
    },
  };
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
