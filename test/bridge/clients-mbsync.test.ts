/**
 * mbsync (isync) with no S/MIME anything, syncing through the device bridge both ways
 * (docs/bridge.md, "Client settings"): it pulls the plaintext into a local Maildir; a flag
 * changed there and a message written there are pushed through the bridge to the gateway,
 * where a second device of the same user sees them through the proxy (the new message
 * stored encrypted, read with `openssl cms -decrypt` and that device's key); then changes
 * that device makes (a flag, an expunge) and new mail come down into the Maildir.
 */
import { readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBridge, type RunningBridge } from '../../src/bridge/bridge.js';
import {
  addSecondDevice,
  mbsync,
  proxyClientAs,
  writeMbsyncConfig,
} from '../helpers/bridge-clients.js';
import { startBridgeWorld, withMailbox, type BridgeWorld } from '../helpers/bridge-world.js';
import { waitFor } from '../helpers/gateway-process.js';
import { decryptWith, type Device } from '../helpers/submission-world.js';
import { tempDir } from '../helpers/tmp.js';

const FIRST_MARKER = 'Wombatfirstplaintext';
const SECOND_MARKER = 'Wombatsecondplaintext';
const LOCAL_MARKER = 'Writteninthemaildirmarker';
const LATE_MARKER = 'Arrivedaftertheclonemarker';

const dir = tempDir('recrypt-bridge-mbsync-');
let world: BridgeWorld;
let bridge: RunningBridge;
let phone: Device;
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

async function asPhone<T>(body: (client: ImapFlow) => Promise<T>): Promise<T> {
  const client = await proxyClientAs(world, phone);
  try {
    return await withMailbox(client, 'INBOX', () => body(client));
  } finally {
    await client.logout();
  }
}

/** Every INBOX message as the second device gets it from the proxy: UID, flags, raw bytes. */
const phoneInbox = () =>
  asPhone(async (client) =>
    (await client.fetchAll('1:*', { uid: true, flags: true, source: true })).map((m) => ({
      uid: m.uid,
      flags: [...(m.flags ?? [])],
      raw: m.source!,
    })),
  );

beforeAll(async () => {
  world = await startBridgeWorld(dir.path);
  await world.deliver('first for mbsync', `One: ${FIRST_MARKER}\n`);
  await world.deliver('second for mbsync', `Two: ${SECOND_MARKER}\n`);
  phone = await addSecondDevice(world);
  bridge = await runBridge(world.options(join(dir.path, 'bridge-data'), true));
  await waitFor(
    'both messages in the bridge',
    () => (bridge.sync.mailboxes.get('INBOX')?.records().length ?? 0) >= 2,
  );
  ({ config, maildir } = writeMbsyncConfig(dir.path, bridge, 'INBOX'));
}, 180_000);

afterAll(async () => {
  await bridge?.close();
  await world?.close();
  dir.remove();
});

describe('mbsync through the bridge', () => {
  it('pulls the plaintext into the local Maildir', async () => {
    await sync();
    expect(files('INBOX').length).toBe(2);
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
    expect(seen.length).toBe(3);
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
        records.length === 3 &&
        !records.some((r) => r.uid === local.uid) &&
        records.some((r) => r.uid === second.uid && r.flags.includes('\\Answered'))
      );
    });
    await sync();
    expect(files('INBOX').length).toBe(3);
    expect(fileWith('INBOX', LOCAL_MARKER)).toBeUndefined();
    expect(maildirFlags(fileWith('INBOX', SECOND_MARKER)!)).toContain('R');
    expect(maildirFlags(fileWith('INBOX', FIRST_MARKER)!)).toBe('FS');
    const late = fileWith('INBOX', LATE_MARKER);
    expect(late, 'the new mail did not come down').toBeDefined();
    expect(readFileSync(late!, 'latin1')).not.toMatch(/pkcs7/i);
  });
});
