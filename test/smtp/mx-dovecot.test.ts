/**
 * Deliveries: messages sent by swaks and nodemailer through the MX arrive in the
 * right Dovecot mailbox, encrypted to the recipient's group; decrypted with the group key
 * they equal the original byte for byte behind the trace headers. Already-encrypted mail
 * is stored as sent. No plaintext marker is left in any file the MX or Dovecot wrote.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { dkimSign } from 'mailauth';
import MailComposer from 'nodemailer/lib/mail-composer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixtureDnsResolver, smtpFixturesDir } from '../helpers/smtp-fixture-dns.js';
import {
  type Harness,
  LOCAL_DOMAIN,
  counterValue,
  fixtureMessage,
  startHarness,
} from '../helpers/smtp-harness.js';
import { opensslDecrypt, opensslEncryptor } from '../helpers/smtp-openssl-encryptor.js';
import { expectRoundTrip, findStored, headerBlock } from '../helpers/smtp-readback.js';
import { sendWithNodemailer, swaks, swaksReplies } from '../helpers/smtp-senders.js';

const marker = `MARK${randomBytes(12).toString('hex')}`;
const id = (name: string): string => `${name}.${randomBytes(6).toString('hex')}@sender.example`;
const alice = `alice@${LOCAL_DOMAIN}`;
const bob = `bob@${LOCAL_DOMAIN}`;

/**
 * What an SMTP client really transmits for `raw`: CRLF line ends (nodemailer turns bare
 * LF into CRLF) and a final CRLF (a message cannot end otherwise).
 */
function smtpMessage(raw: Buffer): Buffer {
  const crlf = Buffer.from(raw.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1');
  return crlf.subarray(-2).toString() === '\r\n'
    ? crlf
    : Buffer.concat([crlf, Buffer.from('\r\n')]);
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return walk(path);
    return entry.isFile() ? [path] : [];
  });
}

// The production encryptor (recryption core) and an independent one (openssl cms).
describe.each(['recrypt', 'openssl'] as const)(
  'MX (%s encryptor) → Dovecot over LMTP, read back over IMAP',
  (encryptor) => {
    let harness: Harness;

    beforeAll(async () => {
      harness = await startHarness({}, { hideSubject: true, encryptor });
    });

    afterAll(async () => {
      await harness?.stop();
    });

    it('swaks, plain text over STARTTLS: stored encrypted, decrypts to the original', async () => {
      const messageId = id('plain');
      const original = fixtureMessage('plain.eml', marker, messageId);
      // swaks ends DATA with CRLF "." CRLF after the data it is given: give it the message
      // without its last CRLF, so that what the MX receives is exactly the fixture.
      const result = await swaks(
        [
          '--server',
          '127.0.0.1',
          '--port',
          String(harness.mx.port),
          '--tls',
          '--from',
          'someone@sender.example',
          '--to',
          alice,
          '--helo',
          'client.sender.example',
        ],
        original.subarray(0, -2),
      );
      expect(result.code, result.transcript).toBe(0);
      expect(swaksReplies(result.transcript).some((line) => /^250 2\.6\.0 /.test(line))).toBe(true);
      const stored = await findStored(harness, 'alice', messageId);
      expect(stored).toHaveLength(1);
      const trace = await expectRoundTrip(stored[0]!, original, harness.groups.alice);
      expect(trace).toContain('with ESMTPS');
      expect(trace).toContain(`for <${alice}>`);
      expect(trace).toMatch(/spf=pass/);
      // The outer Subject is hidden; the marker is only inside the envelope.
      expect(headerBlock(stored[0]!)).not.toContain(marker);
    });

    it('nodemailer, multipart to two users: each gets a copy only its own group key opens', async () => {
      const messageId = id('multipart');
      const original = fixtureMessage('multipart.eml', marker, messageId);
      const result = await sendWithNodemailer(
        harness.mx.port,
        { from: 'someone@sender.example', to: [alice, bob] },
        original,
      );
      expect(result.ok, result.response).toBe(true);
      const [forAlice] = await findStored(harness, 'alice', messageId);
      const [forBob] = await findStored(harness, 'bob', messageId);
      const trace = await expectRoundTrip(forAlice!, original, harness.groups.alice);
      await expectRoundTrip(forBob!, original, harness.groups.bob);
      expect(trace).not.toContain('for <');
      await expect(opensslDecrypt(forAlice!, harness.groups.bob)).rejects.toThrow();
    });

    it('nodemailer, 8-bit body: byte for byte', async () => {
      const messageId = id('8bit');
      const original = fixtureMessage('8bit.eml', marker, messageId);
      const result = await sendWithNodemailer(
        harness.mx.port,
        { from: 'someone@sender.example', to: [alice] },
        original,
      );
      expect(result.ok, result.response).toBe(true);
      const [stored] = await findStored(harness, 'alice', messageId);
      await expectRoundTrip(stored!, original, harness.groups.alice);
    });

    it('nodemailer, SMTPUTF8 addresses: delivered to the mapped mailbox', async () => {
      const messageId = id('utf8');
      const original = fixtureMessage('smtputf8.eml', marker, messageId);
      const result = await sendWithNodemailer(
        harness.mx.port,
        { from: 'jörg@sender.example', to: [`jürgen@${LOCAL_DOMAIN}`] },
        original,
      );
      expect(result.ok, result.response).toBe(true);
      const [stored] = await findStored(harness, 'juergen', messageId);
      const trace = await expectRoundTrip(stored!, original, harness.groups.juergen);
      expect(trace).toContain('with UTF8SMTPS');
    });

    it('nodemailer, DKIM-signed from a domain with SPF and DMARC: the reader sees pass inside', async () => {
      const messageId = id('dkim');
      const unsigned = smtpMessage(
        await new MailComposer({
          from: 'someone@sender.example',
          to: alice,
          subject: `Signed ${marker}`,
          messageId: `<${messageId}>`,
          text: `A signed message ${marker}\n`,
        })
          .compile()
          .build(),
      );
      // mailauth reads `signatureData` (its .d.ts names the fields one level up).
      const signature = await dkimSign(unsigned, {
        signatureData: [
          {
            signingDomain: 'sender.example',
            selector: 'mx2026',
            privateKey: readFileSync(join(smtpFixturesDir, 'dkim-sender.example.key'), 'utf8'),
          },
        ],
      } as unknown as Parameters<typeof dkimSign>[1]);
      expect(signature.signatures).toMatch(/^DKIM-Signature: /);
      const raw = Buffer.concat([Buffer.from(signature.signatures), unsigned]);
      const result = await sendWithNodemailer(
        harness.mx.port,
        { from: 'someone@sender.example', to: [alice] },
        raw,
      );
      expect(result.ok, result.response).toBe(true);
      const [stored] = await findStored(harness, 'alice', messageId);
      const trace = await expectRoundTrip(stored!, raw, harness.groups.alice);
      expect(trace).toMatch(/dkim=pass/);
      expect(trace).toMatch(/spf=pass/);
      expect(trace).toMatch(/dmarc=pass/);
    });

    it('a spoofed sender gets spf=fail and dmarc=fail recorded, and is still delivered', async () => {
      const messageId = id('spoofed');
      const original = fixtureMessage('plain.eml', marker, messageId)
        .toString('utf8')
        .replace('someone@sender.example', 'ceo@spoofed.example');
      const result = await sendWithNodemailer(
        harness.mx.port,
        { from: 'ceo@spoofed.example', to: [alice] },
        Buffer.from(original),
      );
      expect(result.ok, result.response).toBe(true);
      const [stored] = await findStored(harness, 'alice', messageId);
      const trace = await expectRoundTrip(stored!, Buffer.from(original), harness.groups.alice);
      expect(trace).toMatch(/spf=fail/);
      expect(trace).toMatch(/dmarc=fail/);
      expect(fixtureDnsResolver).toBeTypeOf('function');
    });

    it('nodemailer, a 10 MB attachment: byte for byte', async () => {
      const messageId = id('big');
      const raw = await new MailComposer({
        from: 'someone@sender.example',
        to: alice,
        subject: `Big ${marker}`,
        messageId: `<${messageId}>`,
        text: `Ten megabytes follow ${marker}\n`,
        attachments: [{ filename: 'random.bin', content: randomBytes(10 * 1024 * 1024) }],
      })
        .compile()
        .build()
        .then(smtpMessage);
      const result = await sendWithNodemailer(
        harness.mx.port,
        { from: 'someone@sender.example', to: [alice] },
        raw,
      );
      expect(result.ok, result.response).toBe(true);
      const [stored] = await findStored(harness, 'alice', messageId);
      await expectRoundTrip(stored!, raw, harness.groups.alice);
    });

    it('already S/MIME for the group: stored byte-identical, counted as passed through', async () => {
      const messageId = id('smime');
      const inner = fixtureMessage('plain.eml', marker, messageId);
      const envelope = smtpMessage(
        Buffer.from(await harness.encryptor.encryptForGroup(inner, harness.groups.alice.certDer)),
      );
      const before = await counterValue(harness.registry, 'recrypt_smtp_copies_total', {
        kind: 'passed_through',
      });
      const result = await sendWithNodemailer(
        harness.mx.port,
        { from: 'someone@sender.example', to: [alice] },
        envelope,
      );
      expect(result.ok, result.response).toBe(true);
      const [stored] = await findStored(harness, 'alice', messageId);
      // Dovecot prepends its own trace lines (Return-Path, Delivered-To, Received); the rest is as sent.
      const tail = stored!.subarray(stored!.length - envelope.length);
      expect(tail.equals(envelope)).toBe(true);
      const prefix = stored!.subarray(0, stored!.length - envelope.length).toString('utf8');
      expect(prefix).not.toContain('mx.gateway.test;');
      expect(await opensslDecrypt(stored!, harness.groups.alice)).toEqual(inner);
      expect(
        await counterValue(harness.registry, 'recrypt_smtp_copies_total', {
          kind: 'passed_through',
        }),
      ).toBe(before + 1);
    });

    it('an envelope made by openssl cms (any S/MIME client) for the group is recognized and stored as sent', async () => {
      const messageId = id('smime-openssl');
      const inner = fixtureMessage('8bit.eml', marker, messageId);
      const envelope = smtpMessage(
        Buffer.from(
          await opensslEncryptor({ dir: harness.dir, hideSubject: true }).encryptForGroup(
            inner,
            harness.groups.alice.certDer,
          ),
        ),
      );
      const result = await sendWithNodemailer(
        harness.mx.port,
        { from: 'someone@sender.example', to: [alice] },
        envelope,
      );
      expect(result.ok, result.response).toBe(true);
      const [stored] = await findStored(harness, 'alice', messageId);
      expect(stored!.subarray(stored!.length - envelope.length).equals(envelope)).toBe(true);
      expect(await opensslDecrypt(stored!, harness.groups.alice)).toEqual(inner);
    });

    it('S/MIME for another group is encrypted again to the recipient group', async () => {
      const messageId = id('smime-other');
      const inner = fixtureMessage('plain.eml', marker, messageId);
      const forBob = smtpMessage(
        Buffer.from(await harness.encryptor.encryptForGroup(inner, harness.groups.bob.certDer)),
      );
      const result = await sendWithNodemailer(
        harness.mx.port,
        { from: 'someone@sender.example', to: [alice] },
        forBob,
      );
      expect(result.ok, result.response).toBe(true);
      const [stored] = await findStored(harness, 'alice', messageId);
      await expectRoundTrip(stored!, forBob, harness.groups.alice);
    });

    it('the marker from body and (hidden) Subject is in no file the MX or Dovecot wrote', async () => {
      const files = [...walk(harness.dovecot.baseDir), ...walk(harness.dir)];
      expect(files.length).toBeGreaterThan(10);
      expect(files).toContain(harness.logFile);
      expect(statSync(harness.logFile).size).toBeGreaterThan(0);
      const needle = Buffer.from(marker);
      const holding = files.filter((file) => readFileSync(file).includes(needle));
      expect(holding).toEqual([]);
      expect(
        await counterValue(harness.registry, 'recrypt_smtp_messages_total', {
          outcome: 'accepted',
        }),
      ).toBeGreaterThanOrEqual(8);
      expect(
        await counterValue(harness.registry, 'recrypt_smtp_copies_total', { kind: 'encrypted' }),
      ).toBeGreaterThanOrEqual(8);
    });
  },
);
