/**
 * A real Thunderbird reads what the gateway serves (docs/clients.md, "The Thunderbird
 * test"). Debian's thunderbird package bundles its own NSS, new enough for ECDH
 * KeyAgreeRecipientInfo (docs/design.md §3). The gateway runs as `recrypt start` with
 * a user and a `standard` device made by the CLI; Thunderbird runs under Xvfb with a fresh
 * profile, imports the device .p12 (its issuer unknown until the owner CA is trusted
 * for mail, the one step docs/clients.md gives), accepts the gateway's self-signed
 * certificate and reads INBOX over IMAPS through the proxy. Each message must show its text, with Thunderbird's
 * own S/MIME status "encrypted, ok"; the stored copy, opened in the same Thunderbird with
 * the same key, must not decrypt. Screenshots go to test-artifacts/thunderbird/.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/gateway-process.js';
import {
  startThunderbirdGateway,
  type ThunderbirdGateway,
} from '../helpers/thunderbird-gateway.js';
import {
  addImapAccount,
  closeMessageTabs,
  importP12,
  openMessage,
  trustIssuerForMail,
  trustServerCertificate,
  verifyForMail,
  waitForInbox,
  type ListedMessage,
} from '../helpers/thunderbird-mail.js';
import { startThunderbird, type Thunderbird } from '../helpers/thunderbird-process.js';
import { tempDir } from '../helpers/tmp.js';

const ADDRESS = 'alice@example.org';
const ARTIFACTS = join(ROOT, 'test-artifacts', 'thunderbird');

/** 2.5 MiB that do not compress or repeat: SHA-256 in counter mode over a fixed seed. */
function bulk(bytes: number): Buffer {
  const blocks: Buffer[] = [];
  for (let i = 0; blocks.length * 32 < bytes; i++) {
    blocks.push(createHash('sha256').update(`thunderbird-test-${i}`).digest());
  }
  return Buffer.concat(blocks).subarray(0, bytes);
}

const report = Buffer.from('quarter,revenue\nQ1,100\nQ2,120\n', 'utf8');
const archive = bulk(2.5 * 1024 * 1024);
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const CLOSING = 'This closing part comes after the archive.';

const MESSAGES = [
  {
    name: 'small',
    subject: 'Small message',
    text: ['Hello Alice, this small message was recrypted for Thunderbird.'],
    attachments: [] as { name: string; sha256: string }[],
  },
  {
    name: 'multipart',
    subject: 'Multipart with attachment',
    text: ['Hello Alice, the quarterly report is attached.'],
    attachments: [{ name: 'report.csv', sha256: sha256(report) }],
  },
  {
    name: 'large',
    subject: 'Large message, fetched in chunks',
    text: ['Hello Alice, a 2.5 MiB archive follows.', CLOSING],
    attachments: [
      { name: 'archive.bin', sha256: sha256(archive) },
      { name: 'closing.txt', sha256: sha256(Buffer.from(CLOSING)) },
    ],
  },
];

describe('Thunderbird reads recrypted mail over IMAPS', () => {
  const tmp = tempDir('recrypt-thunderbird-');
  let gateway: ThunderbirdGateway | undefined;
  let tb: Thunderbird | undefined;
  let listed: ListedMessage[] = [];

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    mkdirSync(join(tmp.path, 'gateway'));
    mkdirSync(join(tmp.path, 'thunderbird'));
    // Both take a while to start; neither needs the other yet.
    const [startedGateway, startedTb] = await Promise.allSettled([
      startThunderbirdGateway(join(tmp.path, 'gateway'), ADDRESS),
      startThunderbird(join(tmp.path, 'thunderbird')),
    ]);
    if (startedGateway.status === 'fulfilled') gateway = startedGateway.value;
    if (startedTb.status === 'fulfilled') tb = startedTb.value;
    for (const started of [startedGateway, startedTb]) {
      if (started.status === 'rejected') throw started.reason;
    }
    console.log(`Thunderbird under test: ${tb!.version}`);
  }, 300_000);

  afterAll(async () => {
    // The IMAP conversation (outer headers, no login) for a failed run, without the
    // base64 body lines, which are most of its size and only ciphertext.
    if (tb) {
      const lines = tb.imapLog().split('\n');
      const conversation = lines.filter((l) => !/Socket: [A-Za-z0-9+/=]{60,}\r?$/.test(l));
      writeFileSync(join(ARTIFACTS, 'imap.log'), conversation.join('\n'));
    }
    await tb?.close();
    await gateway?.stop();
    tmp.remove();
  });

  /** Opens the message and takes the screenshot, also when the message never displays. */
  async function openAndCapture(uri: string, name: string, digests: boolean) {
    const screenshot = join(ARTIFACTS, name);
    try {
      return await openMessage(tb!.marionette, uri, { digests });
    } finally {
      tb!.screenshot(screenshot);
      console.log(`screenshot: ${screenshot}`);
    }
  }

  it('delivers the messages through the MX', async () => {
    const mail = { from: 'bob@sender.example', to: ADDRESS };
    await gateway!.deliver({ ...mail, subject: MESSAGES[0]!.subject, text: MESSAGES[0]!.text[0] });
    await gateway!.deliver({
      ...mail,
      subject: MESSAGES[1]!.subject,
      text: MESSAGES[1]!.text[0],
      attachments: [{ filename: 'report.csv', content: report, contentType: 'text/csv' }],
    });
    await gateway!.deliver({
      ...mail,
      subject: MESSAGES[2]!.subject,
      text: MESSAGES[2]!.text[0],
      attachments: [
        { filename: 'archive.bin', content: archive, contentType: 'application/octet-stream' },
        // An inline text part: Thunderbird shows it after the archive, in the message text.
        {
          filename: 'closing.txt',
          content: CLOSING,
          contentType: 'text/plain',
          contentDisposition: 'inline',
        },
      ],
    });
    const stored = gateway!.storedFiles();
    expect(stored).toHaveLength(3);
    for (const file of stored) {
      const text = readFileSync(file, 'latin1');
      expect(text).toContain('application/pkcs7-mime');
      for (const message of MESSAGES)
        for (const line of message.text) expect(text).not.toContain(line);
    }
  });

  it('imports the device .p12 and lists INBOX over IMAPS through the proxy', async () => {
    const marionette = tb!.marionette;
    const key = await importP12(marionette, gateway!.device.p12File, gateway!.device.p12Password);
    expect(key.subject).toContain('CN=');
    // What Account Settings calls "unknown issuer" until the owner CA is trusted for mail,
    // the one step docs/clients.md and the README describe; then the certificate verifies.
    expect(await verifyForMail(marionette, key)).toBe('SEC_ERROR_UNKNOWN_ISSUER');
    expect(await trustIssuerForMail(marionette, key)).toBe(gateway!.ownerFingerprint);
    expect(await verifyForMail(marionette, key), 'verifies as a mail recipient').toBe('');
    await trustServerCertificate(marionette, gateway!.certPem, '127.0.0.1', gateway!.imapPort);
    await addImapAccount(marionette, {
      address: ADDRESS,
      host: '127.0.0.1',
      port: gateway!.imapPort,
      password: gateway!.device.devicePassword,
      certificate: key,
    });
    listed = await waitForInbox(marionette, ADDRESS, MESSAGES.length);
    expect(listed.map((m) => m.subject).sort()).toEqual(MESSAGES.map((m) => m.subject).sort());
    expect(listed.find((m) => m.subject === MESSAGES[2]!.subject)!.size).toBeGreaterThan(
      2 * 1024 * 1024,
    );
  });

  for (const [index, message] of MESSAGES.entries()) {
    it(`shows the ${message.name} message decrypted, with S/MIME status ok`, async () => {
      const uri = listed.find((m) => m.subject === message.subject)?.uri;
      expect(uri, 'Thunderbird lists the message').toBeDefined();
      const shown = await openAndCapture(uri!, `${index + 1}-${message.name}.png`, true);
      await closeMessageTabs(tb!.marionette);
      expect(shown.encryptionStatus, 'nsICMSMessageErrors.SUCCESS').toBe(0);
      expect(shown.tech).toBe('S/MIME');
      expect(shown.encryptedIcon).toContain('message-encrypted-ok');
      for (const line of message.text) expect(shown.body).toContain(line);
      expect(
        shown.attachments.map(({ name, sha256: digest }) => ({ name, sha256: digest })),
      ).toEqual(message.attachments);
    });
  }

  it('fetched the large message in BODY[]<start.length> chunks, all of it', () => {
    const large = listed.find((m) => m.subject === MESSAGES[2]!.subject)!;
    const uid = /%3E(\d+)$/.exec(large.uri)?.[1] ?? /#(\d+)$/.exec(large.uri)?.[1];
    expect(uid, large.uri).toBeDefined();
    const log = tb!.imapLog();
    const chunks = [
      ...log.matchAll(
        new RegExp(
          `SendData: \\d+ UID fetch ${uid} \\([^)]*BODY(?:\\.PEEK)?\\[\\]<(\\d+)\\.(\\d+)>`,
          'g',
        ),
      ),
    ].map((m) => ({ start: Number(m[1]), length: Number(m[2]) }));
    // Saving the attachments for their digests may fetch the message again: the first
    // pass is the display's.
    const restart = chunks.findIndex((chunk, i) => i > 0 && chunk.start === 0);
    const pass = restart < 0 ? chunks : chunks.slice(0, restart);
    console.log(
      `Thunderbird fetched the ${large.size}-byte message in ${pass.length} chunks ` +
        `(${chunks.length} partial fetches in all)`,
    );
    expect(pass.length).toBeGreaterThan(2);
    expect(pass[0]!.start).toBe(0);
    for (const [i, chunk] of pass.entries()) {
      if (i > 0) expect(chunk.start).toBe(pass[i - 1]!.start + pass[i - 1]!.length);
    }
    expect(pass.at(-1)!.start + pass.at(-1)!.length).toBeGreaterThanOrEqual(large.size);
    // The log is an artifact a developer reads: Thunderbird keeps the login out of it.
    expect(log).toContain('login succeeded');
    expect(log).not.toContain(gateway!.device.devicePassword);
  });

  it('cannot decrypt the stored copy with the same key', async () => {
    const small = gateway!
      .storedFiles()
      .find((file) => readFileSync(file, 'latin1').includes(MESSAGES[0]!.subject));
    expect(small).toBeDefined();
    const url = `${pathToFileURL(small!).href}?type=application/x-message-display`;
    const shown = await openAndCapture(url, '4-stored-copy.png', false);
    await closeMessageTabs(tb!.marionette);
    expect(shown.encryptionStatus).not.toBe(0);
    expect(shown.encryptedIcon).toContain('message-encrypted-notok');
    expect(shown.body ?? '').not.toContain(MESSAGES[0]!.text[0]);
    // Thunderbird replaces the message pane by its own error page (a data: URL).
    const page = /^data:text\/html;base64,(.*)$/.exec(shown.pane ?? '')?.[1];
    expect(page, `message pane shows ${shown.pane}`).toBeDefined();
    const html = Buffer.from(page!, 'base64').toString('utf8');
    expect(html).toContain('cannot decrypt this message');
    expect(html).not.toContain(MESSAGES[0]!.text[0]);
  });
});
