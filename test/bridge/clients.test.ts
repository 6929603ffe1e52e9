/**
 * Clients with no S/MIME configuration, given only the bridge's address, port, user,
 * local password and certificate, through the device bridge (docs/bridge.md, "Client
 * settings"), against one real gateway (`recrypt start`, mail over SMTP) and a second
 * device of the same user (its own device password) reading through the gateway's proxy:
 *
 * - curl (LIST, SEARCH BODY, a message fetched by UID, over the TLS port and over
 *   STARTTLS) and neomutt in a terminal (tmux) read the plaintext; a flag neomutt sets is
 *   seen by the second device, and flags that device sets are seen by curl;
 * - mbsync (isync) pulls the plaintext into a local Maildir; a flag changed there and a
 *   message written there are pushed through the bridge to the gateway, where the second
 *   device sees them (the new message stored encrypted, read with `openssl cms -decrypt`
 *   and that device's key); then changes that device makes (a flag, an expunge) and new
 *   mail come down into the Maildir.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBridge, type RunningBridge } from '../../src/bridge/bridge.js';
import {
  addSecondDevice,
  curlBridge,
  mbsync,
  openNeomutt,
  proxyClientAs,
  writeMbsyncConfig,
} from '../helpers/bridge-clients.js';
import { startBridgeWorld, withMailbox, type BridgeWorld } from '../helpers/bridge-world.js';
import { waitFor } from '../helpers/gateway-process.js';
import type { Terminal } from '../helpers/gateway-tmux.js';
import { decryptWith, type Device } from '../helpers/submission-world.js';
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

const FIRST_MARKER = 'Wombatfirstplaintext';
const SECOND_MARKER = 'Wombatsecondplaintext';
const LOCAL_MARKER = 'Writteninthemaildirmarker';
const LATE_MARKER = 'Arrivedaftertheclonemarker';

let config: string;
let maildir: string;

const sync = () => mbsync(config, dir.path);
const files = (box: string): string[] =>
  ['cur', 'new'].flatMap((d) =>
    readdirSync(join(maildir, box, d)).map((f) => join(maildir, box, d, f)),
  );
const fileWith = (box: string, marker: string): string | undefined =>
  files(box).find((f) => readFileSync(f, 'latin1').includes(marker));
/** Maildir flags of a file name (`…:2,FS` → `FS`). */
const maildirFlags = (file: string): string => /:2,([A-Z]*)$/.exec(basename(file))?.[1] ?? '';

/** Every INBOX message as the second device gets it from the proxy: UID, flags, raw bytes. */
const phoneInbox = () =>
  asPhone(async (client) =>
    (await client.fetchAll('1:*', { uid: true, flags: true, source: true })).map((m) => ({
      uid: m.uid,
      flags: [...(m.flags ?? [])],
      raw: m.source!,
    })),
  );

describe('mbsync through the bridge', () => {
  // The message the tests above read stays in INBOX: mbsync gets it too.
  const READ = 1;

  beforeAll(async () => {
    await world.deliver('first for mbsync', `One: ${FIRST_MARKER}\n`);
    await world.deliver('second for mbsync', `Two: ${SECOND_MARKER}\n`);
    await waitFor(
      'both messages in the bridge',
      () => (bridge.sync.mailboxes.get('INBOX')?.records().length ?? 0) >= READ + 2,
    );
    ({ config, maildir } = writeMbsyncConfig(dir.path, bridge, 'INBOX'));
  });

  it('pulls the plaintext into the local Maildir', async () => {
    await sync();
    expect(files('INBOX').length).toBe(READ + 2);
    for (const marker of [FIRST_MARKER, SECOND_MARKER]) {
      const file = fileWith('INBOX', marker);
      expect(file, `no local file with ${marker}`).toBeDefined();
      expect(readFileSync(file!, 'latin1')).not.toMatch(/pkcs7/i);
    }
  });

  it('pushes a flag changed and a message written in the Maildir; the other device sees both', async () => {
    const first = fileWith('INBOX', FIRST_MARKER)!;
    renameSync(first, `${first.replace(/:2,[A-Z]*$/, '')}:2,FS`.replace('/new/', '/cur/'));
    writeFileSync(
      join(maildir, 'INBOX', 'new', '1700000000.local1.host'),
      `From: ${world.device.address}\r\nTo: bob@sender.example\r\nSubject: written locally\r\n` +
        `Message-ID: <local1@example.org>\r\n\r\n${LOCAL_MARKER}\r\n`,
    );
    await sync();

    const seen = await phoneInbox();
    expect(seen.length).toBe(READ + 3);
    const plain = seen.map((m) => ({ ...m, text: decryptWith(phone, m.raw)?.toString('utf8') }));
    for (const m of plain) {
      expect(m.raw.toString('latin1'), `UID ${m.uid} stored in the clear`).toMatch(/pkcs7-mime/);
      expect(m.text, `UID ${m.uid} does not open with the second device's key`).toBeDefined();
    }
    const flagged = plain.find((m) => m.text!.includes(FIRST_MARKER))!;
    expect(flagged.flags.sort()).toEqual(['\\Flagged', '\\Seen']);
    const local = plain.find((m) => m.text!.includes(LOCAL_MARKER));
    expect(local, 'the message written in the Maildir is not on the gateway').toBeDefined();
    expect(local!.raw.toString('latin1')).not.toContain(LOCAL_MARKER);
    expect(local!.text).toMatch(/^Subject: written locally\r?$/m);
  });

  it('brings down a flag and an expunge made by the other device, and new mail', async () => {
    const seen = await phoneInbox();
    const second = seen.find((m) => decryptWith(phone, m.raw)?.includes(SECOND_MARKER))!;
    const local = seen.find((m) => decryptWith(phone, m.raw)?.includes(LOCAL_MARKER))!;
    await asPhone(async (client) => {
      await client.messageFlagsAdd(String(second.uid), ['\\Answered'], { uid: true });
      await client.messageDelete(String(local.uid), { uid: true });
    });
    await world.deliver('late for mbsync', `Three: ${LATE_MARKER}\n`);
    // the bridge learns of the changes by its sync (IDLE on INBOX, or the poll)
    await waitFor('the other device’s changes and the new mail in the bridge', () => {
      const inbox = bridge.sync.mailboxes.get('INBOX')!;
      const records = inbox.records();
      return (
        records.length === READ + 3 &&
        !records.some((r) => r.uid === local.uid) &&
        records.some((r) => r.uid === second.uid && r.flags.includes('\\Answered'))
      );
    });
    await sync();
    expect(files('INBOX').length).toBe(READ + 3);
    expect(fileWith('INBOX', LOCAL_MARKER)).toBeUndefined();
    expect(maildirFlags(fileWith('INBOX', SECOND_MARKER)!)).toContain('R');
    expect(maildirFlags(fileWith('INBOX', FIRST_MARKER)!)).toBe('FS');
    const late = fileWith('INBOX', LATE_MARKER);
    expect(late, 'the new mail did not come down').toBeDefined();
    expect(readFileSync(late!, 'latin1')).not.toMatch(/pkcs7/i);
  });
});
