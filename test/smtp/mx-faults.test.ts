/**
 * Faults with nothing lost: the store stops in the middle of a message (451,
 * then the retry is stored), encryption fails (451, nothing stored, no plaintext on
 * disk), one recipient's store refuses permanently after DATA (the others' copies are
 * kept, the sender gets a permanent reply), and a graceful close finishes the DATA in flight.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Harness,
  LOCAL_DOMAIN,
  counterValue,
  fixtureMessage,
  startHarness,
} from '../helpers/smtp-harness.js';
import { findStored, storedMessages } from '../helpers/smtp-readback.js';
import { sendWithNodemailer } from '../helpers/smtp-senders.js';
import { SmtpWire } from '../helpers/smtp-wire.js';
import { expectRoundTrip } from '../helpers/smtp-readback.js';

let harness: Harness;
const alice = `alice@${LOCAL_DOMAIN}`;
const id = (name: string): string => `${name}.${randomBytes(6).toString('hex')}@sender.example`;

beforeAll(async () => {
  harness = await startHarness();
});

afterAll(async () => {
  await harness?.stop();
});

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name));
}

async function openTransaction(recipients: string[]): Promise<SmtpWire> {
  const wire = await SmtpWire.open(harness.mx.port);
  expect(await wire.reply()).toMatch(/^220 /);
  expect(await wire.command('EHLO client.example')).toMatch(/^250/);
  expect(await wire.command('MAIL FROM:<someone@sender.example>')).toMatch(/^250/);
  for (const recipient of recipients)
    expect(await wire.command(`RCPT TO:<${recipient}>`)).toMatch(/^250/);
  expect(await wire.command('DATA')).toMatch(/^354/);
  return wire;
}

describe('MX faults', () => {
  it('the store stops mid-stream: 451 4.3.0; after its restart the retry is stored', async () => {
    const messageId = id('midstream');
    const original = fixtureMessage('plain.eml', 'midstream', messageId);
    const half = original.length >> 1;
    const tempBefore = await counterValue(harness.registry, 'recrypt_smtp_messages_total', {
      outcome: 'temp_failed',
    });
    const wire = await openTransaction([alice]);
    try {
      wire.write(original.subarray(0, half).toString('latin1').replace(/^\./gm, '..'));
      await harness.dovecot.stop();
      wire.write(`${original.subarray(half).toString('latin1').replace(/^\./gm, '..')}.\r\n`);
      expect(await wire.reply()).toMatch(/^451 4\.3\.0 /);
    } finally {
      wire.close();
      await harness.dovecot.restart();
    }
    expect(
      await counterValue(harness.registry, 'recrypt_smtp_messages_total', {
        outcome: 'temp_failed',
      }),
    ).toBe(tempBefore + 1);
    expect(await findStored(harness, 'alice', messageId)).toHaveLength(0);
    const retry = await sendWithNodemailer(
      harness.mx.port,
      { from: 'someone@sender.example', to: [alice] },
      original,
    );
    expect(retry.ok, retry.response).toBe(true);
    const stored = await findStored(harness, 'alice', messageId);
    expect(stored).toHaveLength(1);
    await expectRoundTrip(stored[0]!, original, harness.groups.alice);
  });

  it('encryption fails (a broken group certificate): 451 4.3.0, nothing stored, no plaintext on disk', async () => {
    const marker = `FAILCLOSED${randomBytes(10).toString('hex')}`;
    await harness.directory.add(
      `carol@${LOCAL_DOMAIN}`,
      'carol',
      new Uint8Array(Buffer.from('not a certificate')),
    );
    const result = await sendWithNodemailer(
      harness.mx.port,
      { from: 'someone@sender.example', to: [`carol@${LOCAL_DOMAIN}`] },
      fixtureMessage('plain.eml', marker, id('failclosed')),
    );
    expect(result.ok).toBe(false);
    expect(result.response).toMatch(/^451 4\.3\.0 /);
    expect(await storedMessages(harness, 'carol')).toHaveLength(0);
    const needle = Buffer.from(marker);
    const holding = [...filesUnder(harness.dovecot.baseDir), ...filesUnder(harness.dir)].filter(
      (file) => readFileSync(file).includes(needle),
    );
    expect(holding).toEqual([]);
  });

  it('an encryptor that hands back plaintext is caught: 451, nothing stored', async () => {
    await harness.restartMx({
      encryptor: { encryptForGroup: (message) => message, isAlreadyForGroup: () => false },
    });
    try {
      const messageId = id('plaintext-out');
      const result = await sendWithNodemailer(
        harness.mx.port,
        { from: 'someone@sender.example', to: [alice] },
        fixtureMessage('plain.eml', 'x', messageId),
      );
      expect(result.response).toMatch(/^451 4\.3\.0 /);
      expect(await findStored(harness, 'alice', messageId)).toHaveLength(0);
    } finally {
      await harness.restartMx();
    }
  });

  it('one recipient refused permanently by the store after DATA: the other copy is kept, the sender gets 554 5.2.0', async () => {
    // Dovecot refuses this user name at LMTP RCPT (550 5.1.1) although the directory knows it.
    await harness.directory.add(`broken@${LOCAL_DOMAIN}`, 'bad!user', harness.groups.bob.certDer);
    const messageId = id('partial');
    const original = fixtureMessage('multipart.eml', 'partial', messageId);
    const result = await sendWithNodemailer(
      harness.mx.port,
      { from: 'someone@sender.example', to: [alice, `broken@${LOCAL_DOMAIN}`] },
      original,
    );
    expect(result.ok).toBe(false);
    expect(result.response).toMatch(
      /^554 5\.2\.0 Delivery failed permanently for 1 of 2 recipients/,
    );
    const stored = await findStored(harness, 'alice', messageId);
    expect(stored).toHaveLength(1);
    await expectRoundTrip(stored[0]!, original, harness.groups.alice);
  });

  it('close() lets the DATA in flight finish with 250, then refuses new connections', async () => {
    const messageId = id('graceful');
    const original = fixtureMessage('plain.eml', 'graceful', messageId);
    const wire = await openTransaction([alice]);
    let closed = false;
    try {
      wire.write(original.subarray(0, 100));
      const closing = harness.mx.close().then(() => {
        closed = true;
      });
      await new Promise((resolve) => setTimeout(resolve, 100));
      wire.write(`${original.subarray(100).toString('latin1').replace(/^\./gm, '..')}.\r\n`);
      expect(await wire.reply()).toMatch(/^250 2\.6\.0 /);
      await closing;
      expect(closed).toBe(true);
      // After the transaction the connection is told 421 and closed.
      expect(await wire.reply()).toMatch(/^(421 4\.3\.2 |$)/);
      await expect(SmtpWire.open(harness.mx.port)).rejects.toThrow();
    } finally {
      wire.close();
      await harness.restartMx();
    }
    expect(await findStored(harness, 'alice', messageId)).toHaveLength(1);
  });
});
