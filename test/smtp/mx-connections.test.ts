/**
 * Connection limits of the MX (docs/threat-model.md "Limits"): one address cannot take
 * every connection slot (another address still gets in: 127.0.0.2 is another loopback
 * address on Linux), and an idle client is let go sooner before DATA than inside it.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, LOCAL_DOMAIN, startHarness } from '../helpers/smtp-harness.js';
import { findStored } from '../helpers/smtp-readback.js';
import { SmtpWire } from '../helpers/smtp-wire.js';

let harness: Harness;
const alice = `alice@${LOCAL_DOMAIN}`;

beforeAll(async () => {
  harness = await startHarness({
    maxClients: 10,
    maxClientsPerIp: 3,
    commandTimeoutMs: 1_500,
    socketTimeoutMs: 60_000,
  });
});

afterAll(async () => {
  await harness?.stop();
});

describe('connections per address', () => {
  it('the connection over the per-address limit gets 421 4.7.0; another address still gets in', async () => {
    const held: SmtpWire[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const wire = await SmtpWire.open(harness.mx.port);
        held.push(wire);
        expect(await wire.reply()).toMatch(/^220 /);
      }
      const refused = await SmtpWire.open(harness.mx.port);
      held.push(refused);
      expect(await refused.reply()).toMatch(/^421 4\.7\.0 Too many connections from your address/);
      expect(await refused.reply()).toBe('');
      expect(refused.isClosed).toBe(true);

      const other = await SmtpWire.open(harness.mx.port, '127.0.0.2');
      held.push(other);
      expect(await other.reply()).toMatch(/^220 /);
      expect(await other.command('EHLO other.example')).toMatch(/^250/);

      // A slot freed by one of the first three is usable again.
      held[0]!.close();
      let greeting = '';
      for (let attempt = 0; attempt < 50 && !greeting.startsWith('220 '); attempt++) {
        const again = await SmtpWire.open(harness.mx.port);
        held.push(again);
        greeting = await again.reply();
      }
      expect(greeting).toMatch(/^220 /);
    } finally {
      for (const wire of held) wire.close();
    }
  });
});

describe('idle timeouts', () => {
  it('an idle client before DATA is let go with 421 after the command timeout', async () => {
    const wire = await SmtpWire.open(harness.mx.port);
    try {
      expect(await wire.reply()).toMatch(/^220 /);
      expect(await wire.command('EHLO idle.example')).toMatch(/^250/);
      // Nothing more is sent: the MX ends the session, long before the DATA timeout.
      expect(await wire.reply(30_000)).toMatch(/^421 /);
    } finally {
      wire.close();
    }
  });

  it('inside DATA a pause longer than the command timeout is fine, and the session goes on', async () => {
    const messageId = `pause.${randomBytes(6).toString('hex')}@sender.example`;
    const wire = await SmtpWire.open(harness.mx.port);
    try {
      expect(await wire.reply()).toMatch(/^220 /);
      expect(await wire.command('EHLO slow.example')).toMatch(/^250/);
      expect(await wire.command('MAIL FROM:<someone@sender.example>')).toMatch(/^250/);
      expect(await wire.command(`RCPT TO:<${alice}>`)).toMatch(/^250/);
      expect(await wire.command('DATA')).toMatch(/^354/);
      wire.write(`From: someone@sender.example\r\nTo: ${alice}\r\nMessage-ID: <${messageId}>\r\n`);
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      wire.write('Subject: paused\r\n\r\nafter a pause\r\n.\r\n');
      expect(await wire.reply()).toMatch(/^250 /);
      expect(await wire.command('NOOP')).toMatch(/^250/);
    } finally {
      wire.close();
    }
    expect(await findStored(harness, 'alice', messageId)).toHaveLength(1);
  });
});
