/**
 * The read path for the list tests: the embedded store (Maildir + IMAP + LMTP) with the
 * recrypting proxy in front of it, its DeviceDirectory on a real key store. Posts are
 * delivered over LMTP (nodemailer) and fetched through the proxy by device login.
 */
import nodemailer from 'nodemailer';
import { ensureTlsMaterial } from '../../src/config/tls.js';
import { keyStoreDirectory } from '../../src/imap/adapters/keystore-directory.js';
import { startImapProxy, type ImapProxy } from '../../src/imap/index.js';
import type { KeyStore } from '../../src/keystore/index.js';
import { startLmtpServer, type LmtpServerHandle } from '../../src/store/lmtp/index.js';
import { freePort } from './ports.js';
import { openWire, type Wire } from './proxy-wire.js';
import { MASTER, startStoreServer, type StoreServer } from './store-imap.js';

export interface ListReadPath {
  proxy: ImapProxy;
  store: StoreServer;
  lmtpPort: number;
  /** Delivers `raw` to each mailbox over LMTP. */
  deliver(raw: Buffer, mailboxes: string[]): Promise<void>;
  /** Logs a device in through the proxy and returns the body of INBOX message `uid`. */
  fetch(address: string, password: string, uid: number): Promise<Buffer>;
  /** A logged-in wire with INBOX selected (for tests that keep a session open). */
  session(address: string, password: string): Promise<Wire>;
  stop(): Promise<void>;
}

/** Every message of the mailbox's INBOX as stored (no proxy). */
export async function storedInbox(store: StoreServer, mailbox: string): Promise<Buffer[]> {
  const user = await store.store.openUser(mailbox);
  const inbox = await user.openMailbox('INBOX', { readOnly: true });
  try {
    const out: Buffer[] = [];
    for (const record of inbox.records()) out.push(Buffer.from(await inbox.read(record.uid)));
    return out;
  } finally {
    await inbox.close();
  }
}

export async function fetchBody(w: Wire, uid: number): Promise<Buffer> {
  const tag = `F${Math.random().toString(36).slice(2, 8)}`;
  const before = w.received().length;
  w.send(`${tag} UID FETCH ${uid} (BODY.PEEK[])\r\n`);
  const text = (await w.waitFor(new RegExp(`\\n${tag} (OK|NO|BAD).*\\r\\n`))).slice(before);
  const at = text.indexOf(' FETCH ');
  const match = /\{(\d+)\}\r\n/.exec(text.slice(at));
  if (at < 0 || match === null) throw new Error(`no body literal in: ${text.slice(0, 300)}`);
  const start = at + match.index + match[0].length;
  return Buffer.from(text.slice(start, start + Number(match[1])), 'latin1');
}

/**
 * `inMemory`: the store's Maildir on a RAM-backed file system (tmp.ts), for tests that
 * deliver to many mailboxes and are not about durability.
 */
export async function startListReadPath(
  keyStore: KeyStore,
  mailboxes: string[],
  tlsDir: string,
  { inMemory = false }: { inMemory?: boolean } = {},
): Promise<ListReadPath> {
  const store = await startStoreServer(mailboxes, {}, { inMemory });
  const wires: Wire[] = [];
  let lmtp: LmtpServerHandle | undefined;
  let proxy: ImapProxy | undefined;
  try {
    lmtp = await startLmtpServer({ store: store.store, host: '127.0.0.1', port: await freePort() });
    const tls = await ensureTlsMaterial(tlsDir);
    proxy = await startImapProxy({
      host: '127.0.0.1',
      starttlsPort: 0,
      tls: { key: tls.key, cert: tls.cert },
      upstream: { host: '127.0.0.1', port: store.server.port, tls: false },
      master: MASTER,
      directory: keyStoreDirectory(keyStore),
      allowPlaintextOnLoopback: true,
    });
  } catch (err) {
    await lmtp?.close();
    await store.stop();
    throw err;
  }
  const lmtpPort = lmtp.port;
  const proxyPort = proxy.ports.starttls!;
  const session = async (address: string, password: string): Promise<Wire> => {
    const w = await openWire(proxyPort);
    wires.push(w);
    await w.waitFor(/^\* OK .*\r\n/);
    w.send(`L LOGIN "${address}" "${password}"\r\n`);
    const text = await w.waitFor(/\nL (OK|NO|BAD).*\r\n/);
    if (!/\nL OK/.test(text)) throw new Error(`login refused for ${address}`);
    w.send('S SELECT INBOX\r\n');
    await w.waitFor(/\nS (OK|NO|BAD).*\r\n/);
    return w;
  };
  return {
    proxy,
    store,
    lmtpPort,
    async deliver(raw, to) {
      const transport = nodemailer.createTransport({
        host: '127.0.0.1',
        port: lmtpPort,
        lmtp: true,
        secure: false,
        ignoreTLS: true,
      });
      try {
        await transport.sendMail({ envelope: { from: 'list-bounces@lists.test', to }, raw });
      } finally {
        transport.close();
      }
    },
    session,
    async fetch(address, password, uid) {
      const w = await session(address, password);
      try {
        return await fetchBody(w, uid);
      } finally {
        w.send('Z LOGOUT\r\n');
        w.close();
      }
    },
    async stop() {
      for (const w of wires) w.close();
      await proxy?.close();
      await lmtp?.close();
      await store.stop();
    },
  };
}
