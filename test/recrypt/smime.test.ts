/**
 * wrapMessage: outer headers copied byte-exact (RFC 9788-style protection: the inner
 * entity is the original message), base64 in 76-character CRLF lines, and the edge cases
 * (LF-only, header-only, 0-byte). isEnvelopeForGroup for the MX's store-as-is rule.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wrapMessage, isEnvelopeForGroup, streamMessage } from '../../src/recrypt/smime.js';
import { envelopeForGroup } from '../../src/recrypt/envelope.js';
import { decryptMessage } from '../../src/recrypt/decrypt.js';
import {
  makeOpensslPki,
  opensslDecrypt,
  opensslEncrypt,
  type Party,
} from '../helpers/recrypt-openssl-pki.js';
import { fixtureMessages } from '../helpers/recrypt-messages.js';
import { tempDir } from '../helpers/tmp.js';

let dir: ReturnType<typeof tempDir>;
let group: Party;
let other: Party;
const fixtures = new Map(fixtureMessages().map((m) => [m.name, m.bytes]));
const message = (name: string): Uint8Array => fixtures.get(name)!;
const latin1 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('latin1');

beforeAll(() => {
  dir = tempDir('recrypt-smime-');
  const pki = makeOpensslPki(dir.path);
  group = pki.issue('group');
  other = pki.issue('other');
});
afterAll(() => dir?.remove());

function split(smime: Uint8Array): { head: string; body: string } {
  const text = latin1(smime);
  const at = text.indexOf('\r\n\r\n');
  return { head: text.slice(0, at + 2), body: text.slice(at + 4) };
}

describe('wrapMessage', () => {
  it('keeps From, To, Cc, Date, Subject, Message-ID byte-exact and adds the S/MIME headers', () => {
    const { head, body } = split(wrapMessage(message('plain.eml'), group.certPem));
    expect(head).toBe(
      'From: Alice <alice@example.org>\r\nTo: Bob <bob@example.net>\r\nCc: carol@example.net\r\n' +
        'Date: Sun, 29 Nov 2026 05:00:00 +0000\r\nSubject: Lunch on Thursday?\r\n' +
        'Message-ID: <20261129050000.1234@example.org>\r\nMIME-Version: 1.0\r\n' +
        'Content-Type: application/pkcs7-mime; smime-type=enveloped-data;\r\n name="smime.p7m"\r\n' +
        'Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename="smime.p7m"\r\n',
    );
    const lines = body.split('\r\n');
    expect(lines.pop()).toBe('');
    expect(lines.slice(0, -1).every((l) => l.length === 76)).toBe(true);
    expect(lines.at(-1)!.length).toBeGreaterThan(0);
    expect(lines.at(-1)!.length).toBeLessThanOrEqual(76);
    expect(lines.every((l) => /^[A-Za-z0-9+/=]+$/.test(l))).toBe(true);
  });

  it('copies folded and very long header fields as they are, and 8-bit bytes raw', () => {
    const original = message('long-headers.eml');
    const { head } = split(wrapMessage(original, group.certPem));
    const text = latin1(original);
    const field = (name: string): string => {
      const start = text.indexOf(`\r\n${name}:`) + 2;
      const end = text.slice(start).search(/\r\n(?![ \t])/) + start + 2;
      return text.slice(start, end);
    };
    for (const name of ['References', 'Subject', 'To', 'In-Reply-To'])
      expect(head).toContain(field(name));
    expect(field('References').split('\r\n').length).toBeGreaterThan(30);
    expect(head).not.toContain('X-Unfolded');
    expect(head.startsWith('From: "A very long display name')).toBe(true);
    const eight = split(wrapMessage(message('8bit.eml'), group.certPem)).head;
    expect(eight).toContain(latin1(Buffer.from('Subject: Grüße aus Köln – “quoted” ✓\r\n')));
  });

  it('hides the Subject as "[...]" when asked (RFC 9788)', () => {
    const smime = wrapMessage(message('plain.eml'), group.certPem, { hideSubject: true });
    expect(split(smime).head).toContain('\r\nSubject: [...]\r\n');
    expect(latin1(smime)).not.toContain('Lunch');
    expect(
      Buffer.from(decryptMessage(smime, group)).equals(Buffer.from(message('plain.eml'))),
    ).toBe(true);
  });

  it('LF-only input: the outer message is CRLF, the inner one the exact LF original', () => {
    const original = message('lf-only.eml');
    const smime = wrapMessage(original, group.certPem);
    const { head } = split(smime);
    expect(head).toContain('From: unix@example.org\r\nTo: bob@example.net\r\n');
    expect(head.replace(/\r\n/g, '')).not.toContain('\n');
    expect(opensslDecrypt(dir.path, smime, group).output.equals(Buffer.from(original))).toBe(true);
  });

  it('header-only and 0-byte messages are enveloped losslessly', () => {
    const headerOnly = wrapMessage(message('header-only.eml'), group.certPem);
    expect(split(headerOnly).head).toContain('Subject: no body at all\r\n');
    expect(
      opensslDecrypt(dir.path, headerOnly, group).output.equals(
        Buffer.from(message('header-only.eml')),
      ),
    ).toBe(true);
    const empty = wrapMessage(new Uint8Array(0), group.certPem);
    expect(split(empty).head.startsWith('MIME-Version: 1.0\r\n')).toBe(true);
    const read = opensslDecrypt(dir.path, empty, group);
    expect(read.ok).toBe(true);
    expect(read.output.length).toBe(0);
    expect(decryptMessage(empty, group).length).toBe(0);
  });
});

describe('streamMessage', () => {
  const pulled = (original: Uint8Array, options = {}, encryptChunk?: number): Buffer => {
    const stream = streamMessage(original, group.certPem, options);
    const pieces = [Buffer.from(stream.head), ...stream.body(encryptChunk)];
    const whole = Buffer.concat(pieces);
    expect(whole.length).toBe(stream.byteLength);
    return whole;
  };

  it('pulled piece by piece, it is what wrapMessage makes: same header, same length, openssl reads it', () => {
    for (const name of ['plain.eml', 'lf-only.eml', 'header-only.eml']) {
      const original = message(name);
      for (const chunk of [16, 1000, undefined]) {
        const streamed = pulled(original, {}, chunk);
        const whole = wrapMessage(original, group.certPem);
        expect(streamed.length).toBe(whole.length);
        expect(split(streamed).head).toBe(split(whole).head);
        expect(split(streamed).body).toMatch(/^([A-Za-z0-9+/]{76}\r\n)*[A-Za-z0-9+/=]{0,76}\r\n$/);
        const read = opensslDecrypt(dir.path, streamed, group);
        expect(read.output.equals(Buffer.from(original))).toBe(true);
      }
    }
    const gcm = pulled(message('plain.eml'), { contentEncryption: 'aes-256-gcm' }, 100);
    expect(split(gcm).head).toContain('smime-type=authEnveloped-data');
    expect(Buffer.from(decryptMessage(gcm, group)).equals(Buffer.from(message('plain.eml')))).toBe(
      true,
    );
    expect(opensslDecrypt(dir.path, pulled(new Uint8Array(0)), group).ok).toBe(true);
  });

  it('a bad certificate throws before anything is produced', () => {
    expect(() => streamMessage(message('plain.eml'), new Uint8Array([1, 2, 3]))).toThrow();
  });
});

describe('isEnvelopeForGroup', () => {
  it('recognises envelopes to the group, ours and openssl-made, as S/MIME or DER', () => {
    const ours = wrapMessage(message('plain.eml'), group.certPem);
    expect(isEnvelopeForGroup(ours, group.recipientId)).toBe(true);
    expect(isEnvelopeForGroup(ours, other.recipientId)).toBe(false);
    const theirs = new Uint8Array(
      opensslEncrypt(dir.path, message('plain.eml'), [other, group], { outform: 'SMIME' }),
    );
    expect(isEnvelopeForGroup(theirs, group.recipientId)).toBe(true);
    expect(
      isEnvelopeForGroup(envelopeForGroup(message('plain.eml'), group.certDer), group.recipientId),
    ).toBe(true);
  });

  it('says false for plain mail, garbage and truncated envelopes', () => {
    expect(isEnvelopeForGroup(message('plain.eml'), group.recipientId)).toBe(false);
    expect(isEnvelopeForGroup(new Uint8Array(0), group.recipientId)).toBe(false);
    expect(
      isEnvelopeForGroup(Uint8Array.of(0x30, 0x84, 0xff, 0xff, 0xff, 0xff), group.recipientId),
    ).toBe(false);
    const ours = wrapMessage(message('plain.eml'), group.certPem);
    expect(isEnvelopeForGroup(ours.subarray(0, 400), group.recipientId)).toBe(false);
  });
});
