/**
 * FETCH reads ahead of the message it is writing (disk reads overlap socket writes), but
 * holds at most 16 messages and about 8 MiB of message bytes: a FETCH 1:* BODY[] over
 * large messages must not hold a gigabyte. The real Maildir store and IMAP server; the
 * store's mailbox handles are wrapped only to count the reads in flight, which no
 * real client can observe.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MailboxHandle, MailStore, UserStore } from '../../src/store/backend.js';
import { createMaildirStore } from '../../src/store/maildir/index.js';
import { startImapServer, type ImapServerHandle } from '../../src/store/imap/server.js';
import { MASTER, plain, Wire } from '../helpers/store-imap.js';
import { tempDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;

function message(index: number, bodyBytes: number): Buffer {
  const head = `Subject: m${index}\r\nMessage-ID: <${index}@readahead.test>\r\n\r\n`;
  return Buffer.concat([Buffer.from(head), Buffer.alloc(bodyBytes, 'x')]);
}

/**
 * Resolves once the reply tagged `tag` has arrived, looking at each line once: Wire.until
 * would search the whole reply so far (15 MiB for the large messages) at every chunk.
 */
function taggedReply(w: Wire, tag: string, timeoutMs: number): Promise<void> {
  const reply = new RegExp(`^${tag} (OK|NO|BAD)[^\\r\\n]*\\r$`, 'm');
  return new Promise((resolve, reject) => {
    // The text after the last line end: every line is searched once it is complete.
    let partial = '';
    const finish = (error?: Error) => {
      clearTimeout(timer);
      w.socket.off('data', onData);
      w.socket.off('close', onClose);
      if (error === undefined) resolve();
      else reject(error);
    };
    const onData = (chunk: Buffer) => {
      const text = partial + chunk.toString('latin1');
      const end = text.lastIndexOf('\n');
      if (end === -1) {
        partial = text;
        return;
      }
      partial = text.slice(end + 1);
      if (reply.test(text.slice(0, end))) finish();
    };
    const onClose = () => finish(new Error(`connection closed before the ${tag} reply`));
    const timer = setTimeout(
      () => finish(new Error(`no ${tag} reply within ${timeoutMs} ms`)),
      timeoutMs,
    );
    w.socket.on('data', onData);
    w.socket.on('close', onClose);
  });
}

describe('FETCH read-ahead', () => {
  const dir = tempDir('fetch-readahead-');
  let store: MailStore;
  let server: ImapServerHandle;
  let inFlight = 0;
  let maxInFlight = 0;

  /** The real handle, with its reads counted. */
  const counted = (handle: MailboxHandle): MailboxHandle =>
    new Proxy(handle, {
      get(target, name, receiver) {
        if (name !== 'read') return Reflect.get(target, name, receiver) as unknown;
        return async (...args: Parameters<MailboxHandle['read']>) => {
          inFlight++;
          maxInFlight = Math.max(maxInFlight, inFlight);
          try {
            return await target.read(...args);
          } finally {
            inFlight--;
          }
        };
      },
    });

  beforeAll(async () => {
    const real = await createMaildirStore({ root: dir.path });
    await real.createUser('reader');
    const user = await real.openUser('reader');
    await user.createMailbox('Large');
    await user.createMailbox('Small');
    // Five: without the byte bound all five would be read at once.
    for (let i = 0; i < 5; i++) await user.append('Large', message(i, 3 * MiB));
    for (let i = 0; i < 40; i++) await user.append('Small', message(i, 1024));
    store = new Proxy(real, {
      get(target, name, receiver) {
        if (name !== 'openUser') return Reflect.get(target, name, receiver) as unknown;
        return async (address: string): Promise<UserStore> => {
          const u = await target.openUser(address);
          return new Proxy(u, {
            get(t, n, r) {
              if (n !== 'openMailbox') return Reflect.get(t, n, r) as unknown;
              return async (...args: Parameters<UserStore['openMailbox']>) =>
                counted(await t.openMailbox(...args));
            },
          });
        };
      },
    });
    server = await startImapServer({ store, master: MASTER });
  }, 60_000);

  afterAll(async () => {
    await server?.close();
    await store?.close();
    dir.remove();
  });

  const fetchAll = async (mailbox: string): Promise<string> => {
    const w = await Wire.open(server.port);
    try {
      await w.command('a', `AUTHENTICATE PLAIN ${plain('reader')}`);
      await w.command('b', `EXAMINE ${mailbox}`);
      maxInFlight = 0;
      const done = taggedReply(w, 'c', 60_000);
      w.send('c FETCH 1:* (UID BODY.PEEK[])\r\n');
      await done;
      return w.pending();
    } finally {
      w.close();
    }
  };

  it('reads many small messages ahead at once', async () => {
    const out = await fetchAll('Small');
    expect(out).toMatch(/^c OK /m);
    expect(out.match(/^\* \d+ FETCH /gm)).toHaveLength(40);
    expect(maxInFlight).toBeGreaterThan(4);
    expect(maxInFlight).toBeLessThanOrEqual(16);
  });

  it('holds at most about 8 MiB of large messages ahead, and still sends them all', async () => {
    const out = await fetchAll('Large');
    expect(out).toMatch(/^c OK /m);
    expect(out.match(/^\* \d+ FETCH \(UID \d+ BODY\[\] \{3145\d+\}/gm)).toHaveLength(5);
    expect(maxInFlight).toBeGreaterThanOrEqual(1);
    expect(maxInFlight).toBeLessThanOrEqual(3);
  }, 60_000);
});
