/**
 * The MX does bounded work on every message (docs/threat-model.md "Limits"): the header
 * caps are answered with a permanent 552 5.3.4 / 554 5.6.0 after DATA and nothing is
 * stored, while a message just under each cap is accepted and stored; only the topmost
 * DKIM signatures are evaluated and good mail still passes; a hostile header that costs
 * mailauth minutes is cut off by the authentication deadline while the MX keeps serving.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dkimSign } from 'mailauth';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_HEADER_LIMITS } from '../../src/smtp/header-limits.js';
import { smtpFixturesDir } from '../helpers/smtp-fixture-dns.js';
import { type Harness, LOCAL_DOMAIN, startHarness } from '../helpers/smtp-harness.js';
import { expectRoundTrip, findStored, storedMessages } from '../helpers/smtp-readback.js';
import { SmtpWire } from '../helpers/smtp-wire.js';

let harness: Harness;
const alice = `alice@${LOCAL_DOMAIN}`;
const id = (name: string): string => `${name}.${randomBytes(6).toString('hex')}@sender.example`;
const { maxHeaderBytes, maxHeaderLines, maxHeaderFieldBytes } = DEFAULT_HEADER_LIMITS;

beforeAll(async () => {
  harness = await startHarness();
});

afterAll(async () => {
  await harness?.stop();
});

/** The fixed fields every test message starts with (4 lines). */
function baseFields(messageId: string): string {
  return (
    `From: someone@sender.example\r\nTo: ${alice}\r\nSubject: limits\r\n` +
    `Message-ID: <${messageId}>\r\n`
  );
}

/** `head` and X-Pad fields of at most 2000 bytes, exactly `total` bytes in all. */
function padTo(head: string, total: number): string {
  const sizes: number[] = [];
  for (let left = total - head.length; left > 0; left -= Math.min(2000, left))
    sizes.push(Math.min(2000, left));
  // The last field must hold its name: it takes bytes from the one before.
  if (sizes.length > 1 && sizes.at(-1)! < 40) {
    sizes[sizes.length - 2]! -= 40;
    sizes[sizes.length - 1]! += 40;
  }
  return (
    head +
    sizes
      .map((size, n) => {
        const prefix = `X-Pad-${n}: `;
        return `${prefix}${'p'.repeat(size - prefix.length - 2)}\r\n`;
      })
      .join('')
  );
}

function message(header: string): Buffer {
  return Buffer.from(`${header}\r\nThe body.\r\n`, 'latin1');
}

/** Sends `body` as DATA to alice over a raw socket; returns the final reply. */
async function sendData(body: Buffer): Promise<string> {
  const wire = await SmtpWire.open(harness.mx.port);
  try {
    expect(await wire.reply()).toMatch(/^220 /);
    expect(await wire.command('EHLO client.example')).toMatch(/^250/);
    expect(await wire.command('MAIL FROM:<someone@sender.example>')).toMatch(/^250/);
    expect(await wire.command(`RCPT TO:<${alice}>`)).toMatch(/^250/);
    expect(await wire.command('DATA')).toMatch(/^354/);
    wire.write(body);
    wire.write('.\r\n');
    return await wire.reply(120_000);
  } finally {
    wire.close();
  }
}

async function expectStored(messageId: string, original: Buffer): Promise<string> {
  const stored = await findStored(harness, 'alice', messageId);
  expect(stored).toHaveLength(1);
  return expectRoundTrip(stored[0]!, original, harness.groups.alice);
}

async function expectNothingStored(messageId: string): Promise<void> {
  const all = await storedMessages(harness, 'alice');
  expect(all.some((m) => m.includes(messageId))).toBe(false);
}

describe('header caps, checked while DATA streams in', () => {
  it(`a header section of exactly ${maxHeaderBytes} bytes is stored; one byte more is 552 5.3.4`, async () => {
    const okId = id('bytes-ok');
    const ok = message(padTo(baseFields(okId), maxHeaderBytes));
    expect(ok.indexOf('\r\n\r\n') + 2).toBe(maxHeaderBytes);
    expect(await sendData(ok)).toMatch(/^250 /);
    await expectStored(okId, ok);

    const overId = id('bytes-over');
    const over = message(padTo(baseFields(overId), maxHeaderBytes + 1));
    expect(await sendData(over)).toMatch(
      /^552 5\.3\.4 Message header section exceeds 102400 bytes/,
    );
    await expectNothingStored(overId);
  });

  it(`${maxHeaderLines} header lines are stored; ${maxHeaderLines + 1} are 554 5.6.0`, async () => {
    const lines = (messageId: string, count: number): Buffer =>
      message(baseFields(messageId) + 'X-L: l\r\n'.repeat(count - 4));
    const okId = id('lines-ok');
    const ok = lines(okId, maxHeaderLines);
    expect(await sendData(ok)).toMatch(/^250 /);
    await expectStored(okId, ok);

    const overId = id('lines-over');
    expect(await sendData(lines(overId, maxHeaderLines + 1))).toMatch(
      /^554 5\.6\.0 Message header section has more than 1000 lines/,
    );
    await expectNothingStored(overId);
  });

  it(`a folded field of exactly ${maxHeaderFieldBytes} bytes is stored; one byte more is 554 5.6.0`, async () => {
    /** A Comments field folded over 100-byte lines, `size` bytes with its CRLFs. */
    const folded = (size: number): string => {
      let field = 'Comments: c\r\n';
      while (field.length + 100 <= size) field += ` ${'f'.repeat(97)}\r\n`;
      return field + ` ${'f'.repeat(size - field.length - 3)}\r\n`;
    };
    const okId = id('field-ok');
    const okField = folded(maxHeaderFieldBytes);
    expect(okField.length).toBe(maxHeaderFieldBytes);
    const ok = message(baseFields(okId) + okField);
    expect(await sendData(ok)).toMatch(/^250 /);
    await expectStored(okId, ok);

    const overId = id('field-over');
    const over = message(baseFields(overId) + folded(maxHeaderFieldBytes + 1));
    expect(await sendData(over)).toMatch(/^554 5\.6\.0 A header field .* exceeds 32768 bytes/);
    await expectNothingStored(overId);
  });

  it('a message without a blank line counts as all header: a large one is refused, not parsed', async () => {
    const messageId = id('no-blank-line');
    const body = Buffer.from(
      baseFields(messageId) + 'no header/body separator here\r\n'.repeat(5000),
      'latin1',
    );
    expect(await sendData(body)).toMatch(/^55[24] /);
    await expectNothingStored(messageId);
    // The session and the MX go on: normal mail right after.
    const nextId = id('after-refusal');
    const next = message(baseFields(nextId));
    expect(await sendData(next)).toMatch(/^250 /);
    await expectStored(nextId, next);
  });
});

describe('DKIM signatures evaluated', () => {
  it('good mail signed on top of 900 junk signatures passes DKIM; only 5 are evaluated', async () => {
    const messageId = id('many-signatures');
    const junk = Array.from(
      { length: 900 },
      (_, i) =>
        `DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=junk${i}.example; s=s; l=${i}; h=from; bh=AA; b=BB\r\n`,
    ).join('');
    const unsigned = Buffer.from(
      junk + message(baseFields(messageId)).toString('latin1'),
      'latin1',
    );
    const signature = await dkimSign(unsigned, {
      signatureData: [
        {
          signingDomain: 'sender.example',
          selector: 'mx2026',
          privateKey: readFileSync(join(smtpFixturesDir, 'dkim-sender.example.key'), 'utf8'),
        },
      ],
    } as unknown as Parameters<typeof dkimSign>[1]);
    const signed = Buffer.concat([Buffer.from(signature.signatures, 'latin1'), unsigned]);
    expect(await sendData(signed)).toMatch(/^250 /);
    const trace = await expectStored(messageId, signed);
    expect(trace).toMatch(/dkim=pass header\.i=@sender\.example /);
    // The good signature and the 4 junk ones under it; mailauth alone would list all 901.
    expect(trace.match(/\bdkim=/g)).toHaveLength(5);
  });
});

describe('the authentication deadline', () => {
  let slow: Harness;
  beforeAll(async () => {
    // Caps raised far past the defaults so that mailauth gets the hostile header the
    // caps exist for (a field folded over 40,000 lines: about a minute of its CPU).
    slow = await startHarness({
      headerLimits: {
        maxHeaderBytes: 1 << 20,
        maxHeaderLines: 100_000,
        maxHeaderFieldBytes: 1 << 20,
      },
      authTimeoutMs: 2_000,
    });
  });
  afterAll(async () => {
    await slow?.stop();
  });

  it('stops a check that runs past it (temperror, mail stored) while the MX serves others', async () => {
    const messageId = id('slow-auth');
    const hostile = message(`${baseFields(messageId)}Comments: x${'\r\n x'.repeat(40_000)}\r\n`);
    const first = await SmtpWire.open(slow.mx.port);
    const other = await SmtpWire.open(slow.mx.port);
    try {
      expect(await first.reply()).toMatch(/^220 /);
      expect(await first.command('EHLO first.example')).toMatch(/^250/);
      expect(await first.command('MAIL FROM:<someone@sender.example>')).toMatch(/^250/);
      expect(await first.command(`RCPT TO:<${alice}>`)).toMatch(/^250/);
      expect(await first.command('DATA')).toMatch(/^354/);
      first.write(hostile);
      first.write('.\r\n');
      // While the check runs, another client is served.
      expect(await other.reply()).toMatch(/^220 /);
      expect(await other.command('EHLO other.example')).toMatch(/^250/);
      expect(await other.command('NOOP')).toMatch(/^250/);
      expect(await first.reply(60_000)).toMatch(/^250 /);
    } finally {
      first.close();
      other.close();
    }
    const [stored] = await findStored(slow, 'alice', messageId);
    expect(stored).toBeDefined();
    const trace = await expectRoundTrip(stored!, hostile, slow.groups.alice);
    expect(trace).toContain('spf=temperror; dkim=temperror; dmarc=temperror');
  });
});
