/**
 * Clients with no S/MIME configuration read the plaintext through the device bridge
 * (docs/bridge.md, "Client settings"): curl (LIST, SEARCH BODY, a message fetched by UID,
 * over the TLS port and over STARTTLS) and neomutt in a terminal (tmux), given only the
 * bridge's address, port, user, local password and certificate. Flags cross both ways:
 * a flag neomutt sets through the bridge is seen through the gateway's proxy by a second
 * device of the same user (its own device password), and flags that device sets are seen
 * through the bridge by curl. The gateway is real (`recrypt start`), mail comes over SMTP.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBridge, type RunningBridge } from '../../src/bridge/bridge.js';
import {
  addSecondDevice,
  curlBridge,
  openNeomutt,
  proxyClientAs,
} from '../helpers/bridge-clients.js';
import { startBridgeWorld, withMailbox, type BridgeWorld } from '../helpers/bridge-world.js';
import { waitFor } from '../helpers/gateway-process.js';
import type { Terminal } from '../helpers/gateway-tmux.js';
import type { Device } from '../helpers/submission-world.js';
import { decryptWith } from '../helpers/submission-world.js';
import { tempDir } from '../helpers/tmp.js';

/** Words that exist only inside the encrypted content of the message. */
const BODY_MARKER = 'Quokkaplaintextforcurl';
const SUBJECT = 'plain clients read this';

const dir = tempDir('recrypt-bridge-clients-');
let world: BridgeWorld;
let bridge: RunningBridge;
let phone: Device;
let uid: number;
let terminal: Terminal | undefined;

/** The message's flags as the second device sees them through the gateway's proxy. */
async function phoneFlags(): Promise<string[]> {
  const client = await proxyClientAs(world, phone);
  try {
    return await withMailbox(client, 'INBOX', async () => {
      const message = await client.fetchOne(String(uid), { flags: true }, { uid: true });
      return message === false ? [] : [...(message.flags ?? [])].sort();
    });
  } finally {
    await client.logout();
  }
}

async function asPhone<T>(body: (client: ImapFlow) => Promise<T>): Promise<T> {
  const client = await proxyClientAs(world, phone);
  try {
    return await withMailbox(client, 'INBOX', () => body(client));
  } finally {
    await client.logout();
  }
}

beforeAll(async () => {
  world = await startBridgeWorld(dir.path);
  await world.deliver(SUBJECT, `Hello Alice. ${BODY_MARKER} is in the body.\n`);
  phone = await addSecondDevice(world);
  bridge = await runBridge(world.options(join(dir.path, 'bridge-data'), true));
  await waitFor('the message in the bridge', () => {
    const records = bridge.sync.mailboxes.get('INBOX')?.records() ?? [];
    if (records.length === 0) return false;
    uid = records[0]!.uid;
    return true;
  });
}, 180_000);

afterAll(async () => {
  terminal?.close();
  await bridge?.close();
  await world?.close();
  dir.remove();
});

describe('plain clients through the bridge', () => {
  it('the second device reads the same message through the proxy only as S/MIME', async () => {
    const raw = await asPhone(async (client) => {
      const message = await client.fetchOne(String(uid), { source: true }, { uid: true });
      return message === false ? Buffer.alloc(0) : message.source!;
    });
    expect(raw.toString('latin1')).toMatch(/application\/(x-)?pkcs7-mime/);
    expect(raw.toString('latin1')).not.toContain(BODY_MARKER);
    expect(decryptWith(phone, raw)?.toString('utf8')).toContain(BODY_MARKER);
  });

  it('curl lists the folders, searches the decrypted body and fetches the plaintext', async () => {
    const list = await curlBridge(bridge, '/');
    expect(list).toMatch(/^\* LIST \([^)]*\) "[^"]*" "?INBOX"?\r?$/m);

    const found = await curlBridge(bridge, `/INBOX?BODY%20${BODY_MARKER}`);
    expect(found.trim()).toBe('* SEARCH 1');
    const none = await curlBridge(bridge, '/INBOX?BODY%20Wordthatisnowhere');
    expect(none.trim()).toBe('* SEARCH');

    const message = await curlBridge(bridge, `/INBOX;UID=${uid}`);
    expect(message).toMatch(new RegExp(`^Subject: ${SUBJECT}\\r?$`, 'm'));
    expect(message).toContain(BODY_MARKER);
    expect(message).not.toMatch(/pkcs7/i);

    // the same over the STARTTLS port (--ssl-reqd: curl refuses to go on in plaintext)
    const text = await curlBridge(bridge, `/INBOX;UID=${uid}/;SECTION=TEXT`, { starttls: true });
    expect(text).toContain(BODY_MARKER);
    expect(text).not.toMatch(/^Subject:/m);
  });

  it('neomutt without S/MIME settings shows the body; a flag it sets reaches the other device', async () => {
    mkdirSync(join(dir.path, 'neomutt'));
    terminal = openNeomutt(join(dir.path, 'neomutt'), bridge);
    const index = await terminal.waitFor('+INBOX [Msgs:1', 60_000);
    expect(index).toContain(SUBJECT);
    expect((await phoneFlags()).includes('\\Flagged')).toBe(false);
    // F: flag the message; $: write the mailbox's changes to the server (the bridge)
    terminal.keys('F');
    terminal.keys('$');
    await waitFor('the flag neomutt set, seen by the second device', async () =>
      (await phoneFlags()).includes('\\Flagged'),
    );
    terminal.keys('Enter');
    const pager = await terminal.waitFor(BODY_MARKER);
    expect(pager).toContain(`Subject: ${SUBJECT}`);
    expect(pager).not.toMatch(/S\/MIME|pkcs7/i);
    terminal.close();
    terminal = undefined;
  }, 120_000);

  it('flags the second device sets through the proxy are seen through the bridge by curl', async () => {
    await asPhone(async (client) => {
      await client.messageFlagsAdd(String(uid), ['\\Answered', '$Label1'], { uid: true });
      await client.messageFlagsRemove(String(uid), ['\\Flagged'], { uid: true });
    });
    let flags = '';
    await waitFor('the second device’s flags through the bridge', async () => {
      const answer = await curlBridge(bridge, '/INBOX', { command: `UID FETCH ${uid} FLAGS` });
      flags = /FLAGS \(([^)]*)\)/.exec(answer)?.[1] ?? '';
      return flags.includes('\\Answered');
    });
    const seen = flags.split(' ').sort();
    expect(seen).toContain('$Label1');
    expect(seen).not.toContain('\\Flagged');
  });
});
