/**
 * Bad input on the wire: malformed commands, NUL bytes, overlong lines, bare LF,
 * header-only and broken-MIME messages, wrong dot-stuffing. Each gets the proper SMTP
 * reply, the MX keeps running, and whatever is accepted is stored encrypted, never dropped.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Harness,
  LOCAL_DOMAIN,
  fixtureMessage,
  startHarness,
} from '../helpers/smtp-harness.js';
import { expectRoundTrip, findStored } from '../helpers/smtp-readback.js';
import { sendWithNodemailer } from '../helpers/smtp-senders.js';
import { SmtpWire } from '../helpers/smtp-wire.js';

let harness: Harness;
const alice = `alice@${LOCAL_DOMAIN}`;
const id = (name: string): string => `${name}.${randomBytes(6).toString('hex')}@sender.example`;

beforeAll(async () => {
  harness = await startHarness();
});

afterAll(async () => {
  await harness?.stop();
});

async function greeted(): Promise<SmtpWire> {
  const wire = await SmtpWire.open(harness.mx.port);
  expect(await wire.reply()).toMatch(/^220 /);
  return wire;
}

/** Sends `wireBody` (already dot-stuffed, ending in CRLF) as DATA to alice; returns the final reply. */
async function sendData(wireBody: Buffer, mailParameters = ''): Promise<string> {
  const wire = await greeted();
  try {
    expect(await wire.command('EHLO client.example')).toMatch(/^250/);
    expect(await wire.command(`MAIL FROM:<someone@sender.example>${mailParameters}`)).toMatch(
      /^250/,
    );
    expect(await wire.command(`RCPT TO:<${alice}>`)).toMatch(/^250/);
    expect(await wire.command('DATA')).toMatch(/^354/);
    wire.write(wireBody);
    wire.write('\r\n.\r\n');
    return await wire.reply();
  } finally {
    wire.close();
  }
}

/** The message as the MX receives it for a wire body sent by sendData (the CRLF before "." belongs to it). */
const received = (wireBody: Buffer): Buffer => Buffer.concat([wireBody, Buffer.from('\r\n')]);

/** Returns the trace fields the MX put above the original. */
async function expectStoredEncrypted(messageId: string, original: Buffer): Promise<string> {
  const stored = await findStored(harness, 'alice', messageId);
  expect(stored).toHaveLength(1);
  return expectRoundTrip(stored[0]!, original, harness.groups.alice);
}

describe('MX bad input', () => {
  it('malformed and out-of-order commands get 5xx replies and the session goes on', async () => {
    const wire = await greeted();
    try {
      expect(await wire.command('MAIL FROM:<someone@sender.example>')).toMatch(/^503 /);
      expect(await wire.command('HELO')).toMatch(/^501 /);
      expect(await wire.command('EHLO client.example')).toMatch(/^250/);
      expect(await wire.command('FROB nicate')).toMatch(/^500 5\.5\.2 /);
      expect(await wire.command('DATA')).toMatch(/^503 /);
      expect(await wire.command('MAIL FROM:garbage')).toMatch(/^501 /);
      expect(await wire.command('MAIL FROM:<someone@sender.example> BOGUS=1')).toMatch(
        /^555 5\.5\.4 /,
      );
      expect(await wire.command('MAIL FROM:<someone@sender.example> RET=FULL')).toMatch(
        /^555 5\.5\.4 /,
      );
      expect(await wire.command('MAIL FROM:<someone@sender.example>')).toMatch(/^250/);
      expect(await wire.command('RCPT TO:<>')).toMatch(/^5\d\d /);
      expect(await wire.command(Buffer.from(`RCPT TO:<ali\0ce@${LOCAL_DOMAIN}>`))).toMatch(
        /^5\d\d /,
      );
      expect(await wire.command(`RCPT TO:<alice@${LOCAL_DOMAIN}> NOTIFY=NEVER`)).toMatch(
        /^555 5\.5\.4 /,
      );
      expect(await wire.command(`RCPT TO:<alice@${LOCAL_DOMAIN}>`)).toMatch(/^250/);
      expect(await wire.command('RSET')).toMatch(/^250/);
      expect(await wire.command('NOOP')).toMatch(/^250/);
      expect(await wire.command('QUIT')).toMatch(/^221/);
    } finally {
      wire.close();
    }
  });

  it('a 10,000-character command line is refused (421, connection closed) without a crash', async () => {
    const wire = await greeted();
    try {
      expect(await wire.command('EHLO client.example')).toMatch(/^250/);
      expect(await wire.command(`MAIL FROM:<${'a'.repeat(10_000)}@sender.example>`)).toMatch(
        /^421 4\.4\.2 .*too long/,
      );
      expect(await wire.reply()).toBe('');
      expect(wire.isClosed).toBe(true);
    } finally {
      wire.close();
    }
  });

  it('bare LF line ends and NUL bytes in the body: accepted and stored encrypted, byte for byte', async () => {
    const messageId = id('barelf');
    const original = Buffer.from(
      `From: someone@sender.example\nTo: ${alice}\nSubject: bare LF\nMessage-ID: <${messageId}>\n\nline one\nnul:\0:here\nline three\n.\nnot the end\n`,
      'latin1',
    );
    // The lone ".\n" is not CRLF.CRLF: it is message content (RFC 5321 §4.1.1.4).
    expect(await sendData(original.subarray(0, -1))).toMatch(/^250 2\.6\.0 /);
    const trace = await expectStoredEncrypted(messageId, received(original.subarray(0, -1)));
    // The trace fields take the message's LF endings (docs/clients.md, "What is stored"):
    // the decrypted header section has no CR at all, so no CRLF above LF headers.
    const headerSection = trace + original.toString('latin1').split('\n\n')[0]!;
    expect(trace).toMatch(/\n$/);
    expect(headerSection).not.toContain('\r');
  });

  it('a 10,000-character body line: accepted and stored byte for byte', async () => {
    const messageId = id('longline');
    const original = Buffer.concat([
      fixtureMessage('header-only.eml', 'long', messageId),
      Buffer.from(`\r\n${'x'.repeat(10_000)}\r\nend`),
    ]);
    expect(await sendData(original)).toMatch(/^250 2\.6\.0 /);
    await expectStoredEncrypted(messageId, received(original));
  });

  it('a header-only message: accepted and stored encrypted', async () => {
    const messageId = id('headeronly');
    const original = fixtureMessage('header-only.eml', 'headers', messageId);
    const result = await sendWithNodemailer(
      harness.mx.port,
      { from: 'someone@sender.example', to: [alice] },
      original,
    );
    expect(result.ok, result.response).toBe(true);
    await expectStoredEncrypted(messageId, original);
  });

  it('broken MIME: accepted and stored encrypted, unchanged', async () => {
    const messageId = id('brokenmime');
    const original = fixtureMessage('broken-mime.eml', 'broken', messageId);
    const result = await sendWithNodemailer(
      harness.mx.port,
      { from: 'someone@sender.example', to: [alice] },
      original,
    );
    expect(result.ok, result.response).toBe(true);
    await expectStoredEncrypted(messageId, original);
  });

  it('wrong dot-stuffing: an unstuffed leading dot is kept (smtp-server is lenient), nothing is cut', async () => {
    const messageId = id('dots');
    const onWire = Buffer.from(
      `${fixtureMessage('header-only.eml', 'dots', messageId).toString('latin1')}\r\n.not stuffed\r\n..stuffed\r\nlast line`,
      'latin1',
    );
    expect(await sendData(onWire)).toMatch(/^250 2\.6\.0 /);
    // A stuffed ".." loses one dot; a lone leading dot (a client that forgot to stuff) stays.
    const expected = Buffer.from(
      onWire.toString('latin1').replace('\r\n..stuffed', '\r\n.stuffed'),
      'latin1',
    );
    await expectStoredEncrypted(messageId, received(expected));
  });

  it('a declared SIZE smaller or larger than the message sent: stored whole either way', async () => {
    for (const declared of [10, 100_000]) {
      const messageId = id(`size${declared}`);
      const original = Buffer.concat([
        fixtureMessage('header-only.eml', 'size', messageId),
        Buffer.from(`\r\n${'body\r\n'.repeat(400)}end`),
      ]);
      expect(await sendData(original, ` SIZE=${declared}`)).toMatch(/^250 2\.6\.0 /);
      await expectStoredEncrypted(messageId, received(original));
    }
  });

  it('a client that disconnects in the middle of DATA: nothing is stored, the transaction is let go', async () => {
    const messageId = id('abandoned');
    const wire = await greeted();
    expect(await wire.command('EHLO client.example')).toMatch(/^250/);
    expect(await wire.command('MAIL FROM:<someone@sender.example>')).toMatch(/^250/);
    expect(await wire.command(`RCPT TO:<${alice}>`)).toMatch(/^250/);
    expect(await wire.command('DATA')).toMatch(/^354/);
    wire.write(fixtureMessage('plain.eml', 'abandoned', messageId).subarray(0, 200));
    wire.close();
    // The MX logs the abort once smtp-server has torn the DATA stream down.
    for (
      let i = 0;
      i < 100 && !readFileSync(harness.logFile, 'utf8').includes('DATA aborted by the client');
      i++
    ) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(readFileSync(harness.logFile, 'utf8')).toContain('DATA aborted by the client');
    expect(await findStored(harness, 'alice', messageId)).toHaveLength(0);
  });

  it('the MX still serves normal mail after all of that', async () => {
    const messageId = id('after');
    const original = fixtureMessage('plain.eml', 'after', messageId);
    const result = await sendWithNodemailer(
      harness.mx.port,
      { from: 'someone@sender.example', to: [alice] },
      original,
    );
    expect(result.ok, result.response).toBe(true);
    await expectStoredEncrypted(messageId, original);
  });
});
