/**
 * Answers from the gateway that would look like a deleted INBOX or a new UIDVALIDITY are
 * refused as broken, not acted on (src/bridge/sync-folders.ts, upstream.ts): acted on,
 * they end every local session with `* BYE` and empty the cache, which a revoked device
 * can never fetch again (docs/bridge.md: cached mail stays readable). A scripted IMAP
 * server over real TLS gives the answers: a LIST without INBOX, a SELECT without
 * UIDVALIDITY; the bridge's cache and local mailbox are real.
 */
import { createServer, type Server, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BridgeCache, type CachedMailbox } from '../../src/bridge/cache.js';
import { LocalMailbox } from '../../src/bridge/local-mailbox.js';
import { syncFolderList } from '../../src/bridge/sync-folders.js';
import { Upstream } from '../../src/bridge/upstream.js';
import { ensureTlsMaterial } from '../../src/config/tls.js';
import { tempDir } from '../helpers/tmp.js';

const KEY = Buffer.alloc(32, 7);
const dir = tempDir('bridge-broken-');
let server: Server;
let upstream: Upstream;

/** One answer per command; LIST names only Sent, SELECT gives no UIDVALIDITY. */
function answer(socket: TLSSocket, line: string): void {
  const [tag = '*', name = ''] = line.split(' ');
  const command = name.toUpperCase();
  const ok = (text = 'done'): boolean => socket.write(`${tag} OK ${text}\r\n`);
  if (command === 'CAPABILITY') socket.write('* CAPABILITY IMAP4rev1\r\n');
  if (command === 'LIST') socket.write('* LIST () "/" Sent\r\n');
  if (command === 'SELECT') socket.write('* 1 EXISTS\r\n* OK [UIDNEXT 2] next\r\n');
  if (command === 'LOGOUT') socket.write('* BYE bye\r\n');
  ok(command === 'SELECT' ? '[READ-WRITE] selected' : 'done');
}

beforeAll(async () => {
  const tls = await ensureTlsMaterial(dir.path, undefined, new Date(), 'localhost');
  server = createServer({ key: tls.key, cert: tls.cert }, (socket) => {
    socket.on('error', () => undefined);
    socket.write('* OK [CAPABILITY IMAP4rev1] scripted\r\n');
    let pending = '';
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.toString('latin1');
      for (let end = pending.indexOf('\r\n'); end >= 0; end = pending.indexOf('\r\n')) {
        answer(socket, pending.slice(0, end));
        pending = pending.slice(end + 2);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  upstream = new Upstream({
    host: '127.0.0.1',
    port: (server.address() as AddressInfo).port,
    tls: 'implicit',
    ca: tls.cert,
    servername: 'localhost',
    user: 'alice@example.org',
    password: 'device password',
  });
});

afterAll(async () => {
  await upstream?.close();
  await new Promise((resolve) => server?.close(resolve));
  dir.remove();
});

describe('broken answers from the gateway', () => {
  it('a folder list without INBOX is an error: the cached INBOX and its open session stay', async () => {
    const cache = BridgeCache.open(dir.path, KEY);
    const state: CachedMailbox = {
      name: 'INBOX',
      path: 'INBOX',
      subscribed: true,
      uidValidity: 7,
      uidNext: 1,
      highestModseq: 1,
      messages: [],
    };
    cache.mailboxes.push(state);
    const inbox = new LocalMailbox(state, cache, upstream);
    const plaintext = Buffer.from('Subject: kept\r\n\r\nstill readable\r\n');
    inbox.add(
      {
        uid: 1,
        flags: [],
        internalDate: 0,
        size: plaintext.length,
        modseq: 0,
        kind: 'not-encrypted',
      },
      plaintext,
    );
    const events: string[] = [];
    inbox.attach({
      readOnly: false,
      event: (e) => events.push(e.type),
      claimRecent: () => undefined,
    });
    const mailboxes = new Map([['INBOX', inbox]]);
    const view = {
      cache,
      upstream,
      mailboxes,
      localOf: (s: CachedMailbox) => new LocalMailbox(s, cache, upstream),
    };

    await expect(syncFolderList(view, '/')).rejects.toThrow(
      "the gateway's folder list has no INBOX",
    );
    expect([...mailboxes.keys()]).toEqual(['INBOX']);
    expect(events).not.toContain('bye');
    expect(inbox.read(1).toString('utf8')).toContain('still readable');
    cache.close();
  });

  it('a SELECT without UIDVALIDITY is an error, not a new UIDVALIDITY', async () => {
    await expect(
      upstream.withMailbox('INBOX', async (_client, selected) => selected.uidValidity),
    ).rejects.toThrow("the gateway's SELECT of INBOX has no UIDVALIDITY");
  });
});
