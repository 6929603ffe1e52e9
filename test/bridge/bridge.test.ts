/**
 * The device bridge end to end with real parts (docs/bridge.md): a real gateway
 * (`recrypt init` + `recrypt start`), a user with a device made by `recrypt device add`,
 * mail delivered over SMTP to its MX, and the bridge logged in to the gateway's proxy as
 * that device. Clients read through the bridge with Python's imaplib and imapflow and see
 * the decrypted messages; flags, moves and new mail cross both ways (new INBOX mail by
 * IDLE); an undecryptable message is a placeholder; APPEND and SMTP go through the
 * gateway; UIDs survive a restart; the data directory holds no plaintext.
 */
import { X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createTransport } from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBridge, type RunningBridge } from '../../src/bridge/bridge.js';
import { appleMobileconfig, thunderbirdAutoconfig } from '../../src/bridge/client-config.js';
import { BridgeError } from '../../src/bridge/errors.js';
import {
  ADDRESS,
  bridgeClient,
  imaplibJson,
  readClientFiles,
  startBridgeWorld,
  withMailbox,
  type BridgeWorld,
} from '../helpers/bridge-world.js';
import { waitFor } from '../helpers/gateway-process.js';
import { decryptWith } from '../helpers/submission-world.js';
import { tempDir } from '../helpers/tmp.js';

/** Words that appear only inside the encrypted content of the messages. */
const BODY_MARKER = 'Zebracrossingplaintextmarker';
const LATE_MARKER = 'Latearrivalplaintextmarker';
const DRAFT_MARKER = 'Draftsavedplaintextmarker';
const SENT_MARKER = 'Sentthroughthebridgemarker';
const PUSH_MARKER = 'Pushedbyidlemarker';

const dir = tempDir('recrypt-bridge-');
let world: BridgeWorld;
let bridge: RunningBridge;
const dataDir = join(dir.path, 'bridge-data');
const deliver = (subject: string, text: string) => world.deliver(subject, text);
const proxyClient = () => world.proxyClient();
const bridgeOptions = (setup: boolean) => world.options(dataDir, setup);

/** Python's imaplib over the bridge's TLS port: what a plain IMAP client without S/MIME sees. */
async function readWithImaplib(): Promise<{
  uidvalidity: string;
  uids: string;
  size: number;
  body: string;
  structure: string;
  search: string;
}> {
  const script = `
import imaplib, ssl, sys, json, re
ctx = ssl.create_default_context(cafile=sys.argv[2])
m = imaplib.IMAP4_SSL('127.0.0.1', int(sys.argv[1]), ssl_context=ctx, timeout=30)
m.login(sys.argv[3], sys.argv[4])
typ, _ = m.select('INBOX')
assert typ == 'OK', typ
uidvalidity = m.response('UIDVALIDITY')[1][0].decode()
typ, uids = m.uid('SEARCH', None, 'ALL')
typ, data = m.fetch('1', '(RFC822.SIZE BODYSTRUCTURE BODY.PEEK[])')
meta = data[0][0].decode()
body = data[0][1]
size = int(re.search(r'RFC822\\.SIZE (\\d+)', meta).group(1))
typ, search = m.search(None, 'BODY', sys.argv[5])
typ, _ = m.store('1', '+FLAGS', '(\\\\Flagged)')
assert typ == 'OK', typ
m.logout()
print(json.dumps({'uidvalidity': uidvalidity, 'uids': uids[0].decode(), 'size': size,
  'body': body.decode('utf-8', 'replace'), 'structure': meta + ' ' + data[0][0].decode(),
  'search': search[0].decode()}))
`;
  return imaplibJson(bridge, script, BODY_MARKER);
}

function filesUnder(root: string): string[] {
  return readdirSync(root).flatMap((name) => {
    const path = join(root, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

beforeAll(async () => {
  world = await startBridgeWorld(dir.path);
  await deliver('first message', `Hello Alice. ${BODY_MARKER} is in the body.\n`);
  bridge = await runBridge(bridgeOptions(true));
}, 120_000);

afterAll(async () => {
  await bridge?.close();
  await world?.close();
  dir.remove();
});

describe('recrypt bridge', () => {
  it('serves the decrypted message to imaplib: size, structure and SEARCH BODY of the plaintext; a flag goes upstream', async () => {
    const seen = await readWithImaplib();
    expect(seen.body).toContain(BODY_MARKER);
    expect(seen.body).toMatch(/^Subject: first message\r$/m);
    expect(seen.size).toBe(Buffer.byteLength(seen.body, 'utf8'));
    expect(seen.structure).toMatch(/BODYSTRUCTURE \("TEXT" "PLAIN"/i);
    expect(seen.structure).not.toMatch(/pkcs7/i);
    expect(seen.search).toBe('1');

    const upstream = await proxyClient();
    try {
      const flags = await withMailbox(upstream, 'INBOX', async () => {
        const message = await upstream.fetchOne('1', { uid: true, flags: true });
        return message === false ? [] : [...(message.flags ?? [])];
      });
      expect(flags).toContain('\\Flagged');
      const uidValidity = await withMailbox(upstream, 'INBOX', async () =>
        upstream.mailbox === false ? 0n : upstream.mailbox.uidValidity,
      );
      // Local UIDs are the gateway's (src/bridge/README.md, "UIDs").
      expect(seen.uidvalidity).toBe(String(uidValidity));
    } finally {
      await upstream.logout();
    }
  });

  it('brings down new mail and flags set by another device', async () => {
    await deliver('second message', `Arrived later: ${LATE_MARKER}\n`);
    const client = await bridgeClient(bridge);
    try {
      await waitFor('the new message through the bridge', async () =>
        withMailbox(client, 'INBOX', async () => {
          await client.noop();
          return client.mailbox !== false && client.mailbox.exists >= 2;
        }),
      );
      const upstream = await proxyClient();
      try {
        await withMailbox(upstream, 'INBOX', () =>
          upstream.messageFlagsAdd('2', ['\\Seen', 'Important']),
        );
      } finally {
        await upstream.logout();
      }
      await waitFor('the other device’s flags through the bridge', async () =>
        withMailbox(client, 'INBOX', async () => {
          const message = await client.fetchOne('2', { flags: true, source: true });
          if (message === false) return false;
          expect(message.source?.toString('utf8')).toContain(LATE_MARKER);
          return message.flags?.has('\\Seen') === true && message.flags.has('Important');
        }),
      );
    } finally {
      await client.logout();
    }
  });

  it('shows a message it cannot decrypt as a placeholder', async () => {
    const garbage = Buffer.from(
      'From: mallory@sender.example\r\nTo: alice@example.org\r\nSubject: broken envelope\r\n' +
        'MIME-Version: 1.0\r\n' +
        'Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n' +
        'Content-Transfer-Encoding: base64\r\n\r\n' +
        Buffer.from('not a CMS structure at all').toString('base64') +
        '\r\n',
    );
    const upstream = await proxyClient();
    let uid: number | undefined;
    try {
      const appended = await upstream.append('INBOX', garbage);
      uid = appended === false ? undefined : appended.uid;
    } finally {
      await upstream.logout();
    }
    expect(uid).toBeDefined();
    const client = await bridgeClient(bridge);
    try {
      await waitFor('the placeholder through the bridge', async () =>
        withMailbox(client, 'INBOX', async () => {
          await client.noop();
          const message = await client.fetchOne(String(uid), { source: true }, { uid: true });
          if (message === false) return false;
          const text = message.source!.toString('utf8');
          expect(text).toMatch(/^Subject: broken envelope\r$/m);
          expect(text).toContain('could not be decrypted');
          expect(text).toMatch(/^Content-Type: text\/plain/m);
          return true;
        }),
      );
    } finally {
      await client.logout();
    }
  });

  it('APPENDs through the gateway, which stores it encrypted; the bridge shows the plaintext', async () => {
    const client = await bridgeClient(bridge);
    const draft = `From: alice@example.org\r\nTo: bob@sender.example\r\nSubject: a draft\r\n\r\n${DRAFT_MARKER}\r\n`;
    let uid: number | undefined;
    try {
      const appended = await client.append('Drafts', Buffer.from(draft), ['\\Draft']);
      uid = appended === false ? undefined : appended.uid;
      expect(uid).toBeDefined();
      const local = await withMailbox(client, 'Drafts', () =>
        client.fetchOne(String(uid), { source: true }, { uid: true }),
      );
      expect(local === false ? '' : local.source!.toString('utf8')).toBe(draft);
    } finally {
      await client.logout();
    }
    const upstream = await proxyClient();
    try {
      const stored = await withMailbox(upstream, 'Drafts', () =>
        upstream.fetchOne(String(uid), { source: true }, { uid: true }),
      );
      const raw = stored === false ? Buffer.alloc(0) : stored.source!;
      expect(raw.toString('latin1')).toMatch(/application\/pkcs7-mime/);
      expect(raw.toString('latin1')).not.toContain(DRAFT_MARKER);
      expect(decryptWith(world.device, raw)?.toString('utf8')).toContain(DRAFT_MARKER);
    } finally {
      await upstream.logout();
    }
  });

  it('moves and expunges on the gateway', async () => {
    const client = await bridgeClient(bridge);
    try {
      const moved = await withMailbox(client, 'INBOX', async () => {
        const result = await client.messageMove('2', 'Archive', { uid: true });
        return result === false ? undefined : result.uidMap?.get(2);
      });
      expect(moved).toBeDefined();
      await withMailbox(client, 'Archive', async () => {
        const message = await client.fetchOne(String(moved), { source: true }, { uid: true });
        expect(message === false ? '' : message.source!.toString('utf8')).toContain(LATE_MARKER);
        expect(await client.messageDelete(String(moved), { uid: true })).toBe(true);
      });
    } finally {
      await client.logout();
    }
    const upstream = await proxyClient();
    try {
      const inbox = await withMailbox(upstream, 'INBOX', () =>
        upstream.search({ all: true }, { uid: true }),
      );
      expect(inbox).not.toContain(2);
      const archive = await upstream.status('Archive', { messages: true });
      expect(archive === false ? -1 : archive.messages).toBe(0);
    } finally {
      await upstream.logout();
    }
  });

  it('relays sending to the gateway’s submission with the device’s credentials', async () => {
    const send = (pass: string) =>
      createTransport({
        host: '127.0.0.1',
        port: bridge.smtpPort!,
        secure: false,
        requireTLS: true,
        tls: { ca: readFileSync(bridge.certFile!, 'utf8') },
        auth: { user: ADDRESS, pass },
      }).sendMail({
        from: ADDRESS,
        to: ADDRESS,
        subject: 'note to self',
        text: `Sent through the bridge: ${SENT_MARKER}\n`,
      });
    await expect(send('not the local password')).rejects.toMatchObject({ responseCode: 535 });
    await send(bridge.account.localPassword);
    const client = await bridgeClient(bridge);
    try {
      await waitFor('the sent message in INBOX through the bridge', async () =>
        withMailbox(client, 'INBOX', async () => {
          await client.noop();
          const all = await client.fetchAll('1:*', { source: true });
          return all.some((m) => m.source?.toString('utf8').includes(SENT_MARKER) === true);
        }),
      );
    } finally {
      await client.logout();
    }
  });

  it('keeps UIDVALIDITY and UIDs across a restart, and opens nothing with a wrong passphrase', async () => {
    const before = await bridge.sync.mailboxes
      .get('INBOX')!
      .records()
      .map((r) => r.uid);
    const validity = bridge.sync.mailboxes.get('INBOX')!.state.uidValidity;
    await bridge.close();
    await expect(
      runBridge({ ...bridgeOptions(false), passphrase: 'not the passphrase' }),
    ).rejects.toSatisfy((error) => error instanceof BridgeError && error.code === 'bad-passphrase');
    bridge = await runBridge(bridgeOptions(false));
    expect(bridge.newAccount).toBe(false);
    const inbox = bridge.sync.mailboxes.get('INBOX')!;
    expect(inbox.state.uidValidity).toBe(validity);
    expect(inbox.records().map((r) => r.uid)).toEqual(before);
    const seen = await readWithImaplib();
    expect(seen.uids).toBe(before.join(' '));
    expect(seen.body).toContain(BODY_MARKER);
  });

  it('writes client files for TLS: autoconfig on the TLS port, a profile trusting the local certificate', async () => {
    const autoconfig = join(dir.path, 'tls-autoconfig.xml');
    const mobileconfig = join(dir.path, 'tls.mobileconfig');
    writeFileSync(autoconfig, thunderbirdAutoconfig(bridge));
    writeFileSync(mobileconfig, appleMobileconfig(bridge, readFileSync(bridge.certFile!, 'utf8')));
    const files = await readClientFiles(autoconfig, mobileconfig);
    expect(files.thunderbird.incoming).toEqual([
      'imap',
      '127.0.0.1',
      String(bridge.imapsPort),
      'SSL',
      ADDRESS,
    ]);
    expect(files.thunderbird.outgoing).toEqual([
      'smtp',
      '127.0.0.1',
      String(bridge.smtpPort),
      'STARTTLS',
      ADDRESS,
    ]);
    const der = new X509Certificate(readFileSync(bridge.certFile!)).raw;
    expect(files.apple.payloads).toEqual([
      expect.objectContaining({
        PayloadType: 'com.apple.mail.managed',
        IncomingMailServerPortNumber: bridge.imapsPort,
        IncomingMailServerUseSSL: true,
        OutgoingMailServerPortNumber: bridge.smtpPort,
      }),
      expect.objectContaining({
        PayloadType: 'com.apple.security.root',
        PayloadContent: der.length,
      }),
    ]);
  });

  it('hears new mail from the gateway by IDLE, without waiting for a poll', async () => {
    await bridge.close();
    bridge = await runBridge({ ...bridgeOptions(false), pollMs: 3_600_000 });
    const before = bridge.sync.mailboxes.get('INBOX')!.records().length;
    await deliver('pushed message', `Pushed: ${PUSH_MARKER}\n`);
    await waitFor(
      'the pushed message in the local INBOX',
      () => bridge.sync.mailboxes.get('INBOX')!.records().length > before,
      60_000,
    );
    const inbox = bridge.sync.mailboxes.get('INBOX')!;
    const newest = inbox.records()[inbox.records().length - 1]!;
    expect(inbox.read(newest.uid).toString('utf8')).toContain(PUSH_MARKER);
  });

  it('keeps no plaintext in its data directory', async () => {
    await bridge.close();
    for (const file of filesUnder(dataDir)) {
      const bytes = readFileSync(file);
      for (const marker of [
        BODY_MARKER,
        LATE_MARKER,
        DRAFT_MARKER,
        'first message',
        'bob@sender.example',
      ])
        expect(bytes.includes(marker), `${marker} in ${file}`).toBe(false);
    }
  });
});
