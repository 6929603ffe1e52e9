/**
 * Everything an end-to-end proxy test needs: a real upstream store (Dovecot, or the
 * project's embedded store), a user with devices, the proxy in front (implicit TLS and
 * STARTTLS, self-signed certificate), and delivery of messages into the store (Dovecot:
 * over LMTP; embedded: its delivery call, what its LMTP listener uses). `stop()` ends all.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { ensureTlsMaterial } from '../../src/config/tls.js';
import { startImapProxy, type ImapProxy, type ImapProxyOptions } from '../../src/imap/index.js';
import { startImapServer } from '../../src/store/imap/index.js';
import { createMaildirStore } from '../../src/store/maildir/index.js';
import { startDovecot, type Dovecot } from './dovecot.js';
import { MemoryDirectory } from './proxy-directory.js';
import { makeTestUser, type TestUser } from './proxy-pki.js';
import { tempDir } from './tmp.js';

export type StoreKind = 'dovecot' | 'embedded';
export const STORE_KINDS: StoreKind[] = ['dovecot', 'embedded'];

export interface UpstreamStore {
  kind: StoreKind;
  imapPort: number;
  masterUser: string;
  masterPassword: string;
  stop(): Promise<void>;
}

export interface ProxyHarness {
  upstream: UpstreamStore;
  proxy: ImapProxy;
  directory: MemoryDirectory;
  user: TestUser;
  dir: string;
  tlsCert: string;
  tlsKey: string;
  deliver(message: Uint8Array, to?: string): Promise<void>;
  stop(): Promise<void>;
}

async function startStore(
  kind: StoreKind,
  address: string,
  dir: string,
): Promise<UpstreamStore & { deliver(message: Uint8Array, to: string): Promise<void> }> {
  if (kind === 'dovecot') {
    const dovecot: Dovecot = await startDovecot();
    const transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port: dovecot.lmtpPort,
      lmtp: true,
      secure: false,
      ignoreTLS: true,
    });
    return {
      kind,
      imapPort: dovecot.imapPort,
      masterUser: dovecot.masterUser,
      masterPassword: dovecot.masterPassword,
      async deliver(message, to) {
        await transport.sendMail({
          envelope: { from: 'sender@example.org', to },
          raw: Buffer.from(message),
        });
      },
      async stop() {
        transport.close();
        await dovecot.remove();
      },
    };
  }
  const store = await createMaildirStore({ root: join(dir, 'embedded-store') });
  await store.createUser(address);
  const master = { user: 'gateway', password: randomBytes(18).toString('base64url') };
  const server = await startImapServer({ store, master });
  return {
    kind,
    imapPort: server.port,
    masterUser: master.user,
    masterPassword: master.password,
    async deliver(message, to) {
      await store.deliver(to, message);
    },
    async stop() {
      await server.close();
      await store.close();
    },
  };
}

export async function startProxyHarness(
  extra: Partial<ImapProxyOptions> = {},
  deviceCount = 2,
  kind: StoreKind = 'dovecot',
): Promise<ProxyHarness> {
  const dir = tempDir('imap-proxy-');
  let upstream: Awaited<ReturnType<typeof startStore>> | undefined;
  let proxy: ImapProxy | undefined;
  try {
    const user = await makeTestUser(dir.path, 'alice@example.org', deviceCount);
    upstream = await startStore(kind, user.address, dir.path);
    const directory = new MemoryDirectory();
    directory.addUser(user);
    const tls = await ensureTlsMaterial(dir.path);
    proxy = await startImapProxy({
      host: '127.0.0.1',
      port: 0,
      starttlsPort: 0,
      tls: { key: tls.key, cert: tls.cert },
      upstream: { host: '127.0.0.1', port: upstream.imapPort, tls: false },
      master: { user: upstream.masterUser, password: upstream.masterPassword },
      directory,
      allowPlaintextOnLoopback: true,
      ...extra,
    });
    const started = { upstream, proxy };
    return {
      ...started,
      directory,
      user,
      dir: dir.path,
      tlsCert: tls.cert,
      tlsKey: tls.key,
      deliver: (message, to = user.address) => started.upstream.deliver(message, to),
      async stop() {
        await started.proxy.close();
        await started.upstream.stop();
        dir.remove();
      },
    };
  } catch (error) {
    await proxy?.close();
    await upstream?.stop();
    dir.remove();
    throw error;
  }
}
