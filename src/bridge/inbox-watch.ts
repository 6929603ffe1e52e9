/**
 * Push from the gateway (README.md, "Sync"): a second connection that keeps INBOX
 * selected read-only and IDLEs (imapflow starts IDLE by itself when the connection is
 * quiet); any EXISTS, EXPUNGE or FETCH FLAGS it hears starts a sync round at once, so new
 * mail does not wait for the next poll. A dropped connection is opened again after a
 * pause; polling keeps working meanwhile, and covers the other folders.
 */
import { ImapFlow } from 'imapflow';
import type { SyncLogger } from './sync.js';
import { clientOptions, type UpstreamSettings } from './upstream.js';

const RECONNECT_MS = 10_000;

export interface InboxWatch {
  close(): Promise<void>;
}

export function watchInbox(
  settings: UpstreamSettings,
  onChange: () => void,
  logger: SyncLogger,
): InboxWatch {
  let client: ImapFlow | null = null;
  let timer: NodeJS.Timeout | null = null;
  let closed = false;

  const open = async (): Promise<void> => {
    timer = null;
    if (closed) return;
    // This connection sends nothing else: IDLE as soon as the mailbox is open (default 15 s).
    const next = new ImapFlow({
      ...clientOptions(settings, { disableAutoIdle: false }),
      autoIdleDelay: 500,
    });
    next.on('error', () => undefined);
    next.on('exists', onChange);
    next.on('expunge', onChange);
    next.on('flags', onChange);
    next.on('close', () => {
      if (client === next) client = null;
      if (!closed && timer === null) timer = setTimeout(() => void open(), RECONNECT_MS);
    });
    try {
      await next.connect();
      await next.mailboxOpen('INBOX', { readOnly: true });
      if (closed) {
        await next.logout().catch(() => undefined);
        return;
      }
      client = next;
    } catch (error) {
      logger.warn({ err: (error as Error).message }, 'bridge cannot watch INBOX on the gateway');
      next.close();
    }
  };
  void open();

  return {
    close: async () => {
      closed = true;
      if (timer !== null) clearTimeout(timer);
      const current = client;
      client = null;
      await current?.logout().catch(() => current.close());
    },
  };
}
