/**
 * APPEND through the proxy: a plaintext message a client files (Sent, Drafts) is stored
 * encrypted to the user's group — with synchronizing literals (imaplib), LITERAL+
 * (imapflow) and MULTIAPPEND — and reads back decrypted by the device.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBinary } from '../helpers/binaries.js';
import { STORE_KINDS, startProxyHarness, type ProxyHarness } from '../helpers/proxy-harness.js';
import { decryptWith, encryptToGroup } from '../helpers/proxy-pki.js';
import { openWire, type Wire } from '../helpers/proxy-wire.js';

const run = promisify(execFile);
const fixtures = join(import.meta.dirname, '..', 'fixtures', 'imap');

describe.each(STORE_KINDS)('APPEND through the proxy (%s upstream)', (kind) => {
  let h: ProxyHarness;
  const wires: Wire[] = [];

  beforeAll(async () => {
    h = await startProxyHarness({}, 2, kind);
  });
  afterAll(async () => {
    for (const wire of wires) wire.close();
    await h?.stop();
  });

  /** What the store holds, read straight from Dovecot with the master login. */
  async function stored(mailbox: string, uid: number): Promise<Buffer> {
    const w = await openWire(h.upstream.imapPort);
    wires.push(w);
    const credential = Buffer.from(
      `${h.user.address}\0${h.upstream.masterUser}\0${h.upstream.masterPassword}`,
    ).toString('base64');
    w.send(
      `D1 AUTHENTICATE PLAIN ${credential}\r\nD2 EXAMINE ${mailbox}\r\nD3 UID FETCH ${uid} (BODY.PEEK[])\r\n`,
    );
    const text = await w.waitFor(/\nD3 OK .*\r\n/);
    const from = text.indexOf(' FETCH ');
    const match = /\{(\d+)\}\r\n/.exec(text.slice(from))!;
    const start = from + match.index + match[0].length;
    w.close();
    return Buffer.from(text.slice(start, start + Number(match[1])), 'latin1');
  }

  function client(): ImapFlow {
    return new ImapFlow({
      host: '127.0.0.1',
      port: h.proxy.ports.tls!,
      secure: true,
      tls: { rejectUnauthorized: false },
      auth: { user: h.user.address, pass: h.user.devices[0]!.password },
      logger: false,
    });
  }

  it('imaplib (synchronizing literal): stored encrypted to the group, read back decrypted by the device', async () => {
    const python = requireBinary('python3');
    const message = Buffer.from(
      'From: alice@example.org\r\nTo: bob@example.org\r\nSubject: sent by imaplib\r\n\r\nPlain text I sent.\r\n',
    );
    const file = join(h.dir, 'sent-1.eml');
    writeFileSync(file, message);
    const caFile = join(h.dir, 'ca.pem');
    writeFileSync(caFile, h.tlsCert);
    await run(python, [
      join(fixtures, 'imaplib-append.py'),
      '127.0.0.1',
      String(h.proxy.ports.tls),
      caFile,
      h.user.address,
      h.user.devices[0]!.password,
      'Sent',
      file,
    ]);
    const atRest = await stored('Sent', 1);
    expect(atRest.includes('Plain text I sent')).toBe(false);
    expect(atRest.toString('latin1')).toMatch(/Content-Type: application\/pkcs7-mime/);
    expect((await decryptWith(atRest, h.user.group)).equals(message)).toBe(true);
    const c = client();
    await c.connect();
    try {
      await c.mailboxOpen('Sent');
      const fetched = (await c.fetchOne('1', { source: true }, { uid: true })) as {
        source: Buffer;
      };
      expect((await decryptWith(fetched.source, h.user.devices[0]!)).equals(message)).toBe(true);
      await expect(decryptWith(fetched.source, h.user.devices[1]!)).rejects.toThrow(/failed/);
    } finally {
      await c.logout();
    }
  });

  it('imapflow (LITERAL+) Drafts, and an already encrypted message is stored as it is', async () => {
    const draft = Buffer.from(
      'From: alice@example.org\r\nSubject: draft\r\n\r\n' + 'unfinished thought\r\n'.repeat(5000),
    );
    const already = await encryptToGroup(
      Buffer.from('Subject: e2e\r\n\r\nsecret\r\n'),
      h.user.group,
    );
    const c = client();
    await c.connect();
    try {
      await c.mailboxCreate('Drafts');
      const first = await c.append('Drafts', draft, ['\\Draft']);
      const second = await c.append('Drafts', already);
      expect(first && first.uid).toBe(1);
      expect(second && second.uid).toBe(2);
      await c.mailboxOpen('Drafts');
      const fetched = (await c.fetchOne('1', { source: true }, { uid: true })) as {
        source: Buffer;
      };
      expect((await decryptWith(fetched.source, h.user.devices[0]!)).equals(draft)).toBe(true);
    } finally {
      await c.logout();
    }
    expect((await stored('Drafts', 2)).equals(already)).toBe(true);
    expect((await decryptWith(await stored('Drafts', 1), h.user.group)).equals(draft)).toBe(true);
  });

  it('MULTIAPPEND on the wire: every message encrypted, the command answered once', async () => {
    const w = await openWire(h.proxy.ports.starttls!);
    wires.push(w);
    await w.waitFor(/^\* OK .*\r\n/);
    w.send(`L LOGIN ${h.user.address} ${h.user.devices[1]!.password}\r\nC CREATE Multi\r\n`);
    await w.waitFor(/\nC OK .*\r\n/);
    // Both stores offer MULTIAPPEND (RFC 3502; the embedded one per src/store/imap/README.md), and the proxy passes it on.
    expect(w.received()).toMatch(/\nL OK \[CAPABILITY [^\]]*MULTIAPPEND/);
    const one = 'Subject: one\r\n\r\nfirst\r\n';
    const two = 'Subject: two\r\n\r\nsecond\r\n';
    w.send(`M APPEND Multi (\\Seen) {${one.length}}\r\n`);
    await w.waitFor(/\+ .*\r\n/);
    w.send(`${one} () {${two.length}+}\r\n${two}\r\n`);
    expect(await w.waitFor(/\nM (OK|NO|BAD).*\r\n/)).toMatch(/\nM OK \[APPENDUID \d+ 1:2\]/);
    for (const [uid, text] of [
      [1, one],
      [2, two],
    ] as const) {
      const atRest = await stored('Multi', uid);
      expect(atRest.includes(text.split('\r\n\r\n')[1]!)).toBe(false);
      expect((await decryptWith(atRest, h.user.group)).toString()).toBe(text);
    }
  });
});
