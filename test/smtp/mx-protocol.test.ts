/**
 * The MX's SMTP surface: extensions offered, no AUTH, the configured banner,
 * SIZE, and the RCPT decisions (unknown local user 550 5.1.1, any other domain 550 5.7.1
 * so it is never an open relay, key store down 451 4.3.0 — with a real redis-server
 * stopped and started again).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { requireBinary } from '../helpers/binaries.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Harness,
  LOCAL_DOMAIN,
  counterValue,
  fixtureMessage,
  startHarness,
} from '../helpers/smtp-harness.js';
import { sendWithNodemailer, swaks, swaksReplies } from '../helpers/smtp-senders.js';
import { SmtpWire } from '../helpers/smtp-wire.js';

let harness: Harness;

beforeAll(async () => {
  harness = await startHarness({ banner: 'Welcome to the recrypt test MX', maxSize: 256 * 1024 });
});

afterAll(async () => {
  await harness?.stop();
});

async function session(): Promise<SmtpWire> {
  const wire = await SmtpWire.open(harness.mx.port);
  expect(await wire.reply()).toMatch(/^220 /);
  expect(await wire.command('EHLO client.example')).toMatch(/^250/);
  return wire;
}

describe('MX protocol surface', () => {
  it('greets with the configured banner and offers the MX extensions, without AUTH', async () => {
    const wire = await SmtpWire.open(harness.mx.port);
    try {
      expect(await wire.reply()).toBe('220 mx.gateway.test ESMTP Welcome to the recrypt test MX');
      const ehlo = await wire.command('EHLO client.example');
      for (const extension of [
        'PIPELINING',
        '8BITMIME',
        'SMTPUTF8',
        'ENHANCEDSTATUSCODES',
        'STARTTLS',
        `SIZE ${256 * 1024}`,
      ]) {
        expect(ehlo.split('\n').map((line) => line.slice(4))).toContain(extension);
      }
      expect(ehlo).not.toMatch(/AUTH/);
      expect(await wire.command('AUTH PLAIN AGdhdGV3YXkAc2VjcmV0')).toMatch(/^5\d\d /);
    } finally {
      wire.close();
    }
  });

  it('RCPT: known 250, unknown local 550 5.1.1, foreign domain 550 5.7.1 (no relay)', async () => {
    const before = await counterValue(harness.registry, 'recrypt_smtp_recipients_rejected_total', {
      reason: 'relay',
    });
    const wire = await session();
    try {
      expect(await wire.command('MAIL FROM:<someone@sender.example>')).toMatch(/^250 2\.1\.0 /);
      expect(await wire.command(`RCPT TO:<alice@${LOCAL_DOMAIN}>`)).toMatch(/^250 2\.1\.5 /);
      expect(await wire.command(`RCPT TO:<nobody@${LOCAL_DOMAIN}>`)).toMatch(/^550 5\.1\.1 /);
      expect(await wire.command('RCPT TO:<victim@elsewhere.example>')).toMatch(/^550 5\.7\.1 /);
      expect(await wire.command(`RCPT TO:<alice@sub.${LOCAL_DOMAIN}>`)).toMatch(/^550 5\.7\.1 /);
      // No postmaster configured here (with one, test/smtp/adapters.test.ts): unknown.
      expect(await wire.command('RCPT TO:<postmaster>')).toMatch(/^550 5\.1\.1 /);
    } finally {
      wire.close();
    }
    expect(
      await counterValue(harness.registry, 'recrypt_smtp_recipients_rejected_total', {
        reason: 'relay',
      }),
    ).toBe(before + 2);
  });

  it('swaks to a foreign domain is refused at RCPT: the MX is no open relay', async () => {
    const result = await swaks([
      '--server',
      '127.0.0.1',
      '--port',
      String(harness.mx.port),
      '--from',
      'someone@sender.example',
      '--to',
      'victim@elsewhere.example',
      '--quit-after',
      'RCPT',
    ]);
    expect(swaksReplies(result.transcript).some((line) => line.startsWith('550 5.7.1 '))).toBe(
      true,
    );
  });

  it('SIZE: a declared size over the limit gets 552 5.3.4 at MAIL; an oversized DATA gets 552 5.3.4', async () => {
    const wire = await session();
    try {
      expect(await wire.command(`MAIL FROM:<someone@sender.example> SIZE=${1024 * 1024}`)).toMatch(
        /^552 5\.3\.4 /,
      );
    } finally {
      wire.close();
    }
    const big = Buffer.concat([
      fixtureMessage('plain.eml', 'x', `big.${randomBytes(4).toString('hex')}@sender.example`),
      Buffer.alloc(300 * 1024, 'abcdefghij\r\n'),
    ]);
    const result = await sendWithNodemailer(
      harness.mx.port,
      { from: 'someone@sender.example', to: [`alice@${LOCAL_DOMAIN}`] },
      big,
    );
    expect(result.ok).toBe(false);
    expect(result.response).toMatch(/^552 5\.3\.4 /);
  });

  it('key store down: 451 4.3.0 at RCPT; back up: 250', async () => {
    await harness.redis.stop();
    try {
      const wire = await session();
      try {
        expect(await wire.command('MAIL FROM:<someone@sender.example>')).toMatch(/^250/);
        expect(await wire.command(`RCPT TO:<alice@${LOCAL_DOMAIN}>`)).toMatch(/^451 4\.3\.0 /);
      } finally {
        wire.close();
      }
    } finally {
      await harness.redis.start();
    }
    // The redis server was started empty (no persistence): the directory entry is re-added.
    await harness.directory.add(`alice@${LOCAL_DOMAIN}`, 'alice', harness.groups.alice.certDer);
    const wire = await session();
    try {
      expect(await wire.command('MAIL FROM:<someone@sender.example>')).toMatch(/^250/);
      expect(await wire.command(`RCPT TO:<alice@${LOCAL_DOMAIN}>`)).toMatch(/^250 2\.1\.5 /);
    } finally {
      wire.close();
    }
    expect(
      await counterValue(harness.registry, 'recrypt_smtp_recipients_rejected_total', {
        reason: 'unavailable',
      }),
    ).toBeGreaterThanOrEqual(1);
  });

  it('STARTTLS presents the configured certificate (openssl s_client)', async () => {
    requireBinary('openssl');
    // -brief prints the handshake summary (with the peer subject) on stderr.
    const { stdout } = await promisify(execFile)(
      'sh',
      [
        '-c',
        `openssl s_client -starttls smtp -connect 127.0.0.1:${harness.mx.port} -brief </dev/null 2>&1 || true`,
      ],
      {
        timeout: 20_000,
      },
    );
    expect(stdout).toMatch(/Peer certificate: CN ?= ?mx\.gateway\.test/);
  });

  it('connection limit: the connection over maxClients is turned away with 421', async () => {
    await harness.restartMx({ maxClients: 2 });
    const open: SmtpWire[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        const wire = await SmtpWire.open(harness.mx.port);
        expect(await wire.reply()).toMatch(/^220 /);
        open.push(wire);
      }
      const third = await SmtpWire.open(harness.mx.port);
      open.push(third);
      expect(await third.reply()).toMatch(/^421 /);
    } finally {
      for (const wire of open) wire.close();
      await harness.restartMx({ banner: 'Welcome to the recrypt test MX', maxSize: 256 * 1024 });
    }
  });

  it('PIPELINING: a whole pipelined transaction is answered in order', async () => {
    const wire = await session();
    const messageId = `pipe.${randomBytes(4).toString('hex')}@sender.example`;
    try {
      const body = fixtureMessage('plain.eml', 'pipelined', messageId)
        .toString('latin1')
        .replace(/^\./gm, '..');
      wire.write(
        `MAIL FROM:<someone@sender.example>\r\nRCPT TO:<alice@${LOCAL_DOMAIN}>\r\nRCPT TO:<nobody@${LOCAL_DOMAIN}>\r\nDATA\r\n`,
      );
      expect(await wire.reply()).toMatch(/^250 2\.1\.0/);
      expect(await wire.reply()).toMatch(/^250 2\.1\.5/);
      expect(await wire.reply()).toMatch(/^550 5\.1\.1/);
      expect(await wire.reply()).toMatch(/^354/);
      wire.write(`${body}.\r\n`);
      expect(await wire.reply()).toMatch(/^250 2\.6\.0 /);
      expect(await wire.command('QUIT')).toMatch(/^221/);
    } finally {
      wire.close();
    }
  });
});
