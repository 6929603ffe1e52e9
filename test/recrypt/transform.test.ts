/**
 * Transform behaviour on well-formed input: which recipient info is recrypted for which
 * client, end-to-end senders' envelopes made by OpenSSL, every input form (DER, base64
 * of any line length, message with base64 or binary body), and certificates from both
 * the openssl CLI and the project's own certificates.ts. Checked with `openssl cms`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { envelopeForGroup } from '../../src/recrypt/envelope.js';
import { wrapMessage } from '../../src/recrypt/smime.js';
import {
  applyEdits,
  planRecrypt,
  recryptBase64,
  recryptDer,
  recryptMessage,
  recryptRange,
} from '../../src/recrypt/transform.js';
import { parseEnvelopePrefix } from '../../src/recrypt/transform-prefix.js';
import { decryptEnvelope, decryptMessage } from '../../src/recrypt/decrypt.js';
import {
  issueDeviceCertificate,
  issueGroupCertificate,
  issueOwnerCa,
  recipientIdOf,
  toPem,
} from '../../src/recrypt/certificates.js';
import { privateKeyObject, publicPoint, randomScalar } from '../../src/recrypt/scalar.js';
import {
  makeOpensslPki,
  opensslDecrypt,
  opensslEncrypt,
  type Party,
} from '../helpers/recrypt-openssl-pki.js';
import { fixtureMessages } from '../helpers/recrypt-messages.js';
import { deviceKeys, hex } from '../helpers/recrypt-keys.js';
import { tempDir } from '../helpers/tmp.js';

let dir: ReturnType<typeof tempDir>;
let group: Party;
let laptop: Party;
let outlook: Party;
let sender: Party;
const original = fixtureMessages().find((m) => m.name === 'plain.eml')!.bytes;

beforeAll(() => {
  dir = tempDir('recrypt-transform-');
  const pki = makeOpensslPki(dir.path);
  group = pki.issue('group');
  laptop = pki.issue('laptop');
  outlook = pki.issue('outlook');
  sender = pki.issue('sender');
});
afterAll(() => dir?.remove());

function ridsByEncoding(der: Uint8Array): Array<[string, string]> {
  return parseEnvelopePrefix(der).karis.map((k) => [k.wrapEncoding, hex(k.recipients[0]!.rid)]);
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a).equals(Buffer.from(b));
}

describe('which recipient info is recrypted', () => {
  it("an 'outlook' device gets the NULL-encoding one; the 'absent' one is untouched", () => {
    const stored = envelopeForGroup(original, group.certDer);
    const recrypted = recryptDer(stored, deviceKeys(group, outlook, 'null'));
    expect(ridsByEncoding(recrypted)).toEqual([
      ['absent', hex(group.recipientId)],
      ['null', hex(outlook.recipientId)],
    ]);
    const [absentBefore] = parseEnvelopePrefix(stored).karis;
    const [absentAfter] = parseEnvelopePrefix(recrypted).karis;
    expect(
      same(
        stored.subarray(absentBefore!.tlv.offset, absentBefore!.tlv.end),
        recrypted.subarray(absentAfter!.tlv.offset, absentAfter!.tlv.end),
      ),
    ).toBe(true);
    const read = opensslDecrypt(dir.path, recrypted, outlook, 'DER');
    expect(read.stderr).toBe('');
    expect(same(read.output, original)).toBe(true);
    expect(same(decryptEnvelope(recrypted, outlook), original)).toBe(true);
  });

  it('with one recipient info only, the group key no longer finds its recipient after recryption', () => {
    const stored = envelopeForGroup(original, group.certDer, { wrapEncodings: ['absent'] });
    expect(opensslDecrypt(dir.path, stored, group, 'DER').ok).toBe(true);
    const recrypted = recryptDer(stored, deviceKeys(group, laptop));
    const asGroup = opensslDecrypt(dir.path, recrypted, group, 'DER');
    expect(asGroup.ok).toBe(false);
    expect(asGroup.stderr).toMatch(/no matching recipient|decrypt/i);
    expect(same(opensslDecrypt(dir.path, recrypted, laptop, 'DER').output, original)).toBe(true);
  });

  it("falls back to the encoding the message has (an 'outlook' device, only an 'absent' recipient info)", () => {
    const stored = envelopeForGroup(original, group.certDer, { wrapEncodings: ['absent'] });
    const recrypted = recryptDer(stored, deviceKeys(group, outlook, 'null'));
    expect(ridsByEncoding(recrypted)).toEqual([['absent', hex(outlook.recipientId)]]);
    expect(same(opensslDecrypt(dir.path, recrypted, outlook, 'DER').output, original)).toBe(true);
  });

  it('a device without a key for the group gets the stored bytes unchanged', () => {
    const stored = wrapMessage(original, group.certPem);
    const otherGroup = { secret: randomScalar(), recipientId: sender.recipientId };
    const keys = deviceKeys(otherGroup, laptop);
    expect(planRecrypt(stored, 'message', keys)).toEqual({ kind: 'unchanged', reason: 'no-key' });
    expect(same(recryptMessage(stored, keys), stored)).toBe(true);
  });

  it('AES-256-GCM AuthEnvelopedData recrypts and decrypts', () => {
    const stored = wrapMessage(original, group.certPem, { contentEncryption: 'aes-256-gcm' });
    expect(Buffer.from(stored).toString('latin1')).toContain('smime-type=authEnveloped-data');
    const recrypted = recryptMessage(stored, deviceKeys(group, laptop));
    expect(same(opensslDecrypt(dir.path, recrypted, laptop).output, original)).toBe(true);
    expect(same(decryptMessage(recrypted, laptop), original)).toBe(true);
  });
});

describe('end-to-end senders: envelopes made by openssl cms -encrypt', () => {
  it.each([
    ['EnvelopedData', {}],
    ['EnvelopedData, streamed (indefinite outer lengths)', { stream: true }],
    ['AuthEnvelopedData (GCM)', { cipher: 'aes-256-gcm' as const }],
  ])('%s to the group and the sender: only the group one changes', (_label, options) => {
    const stored = new Uint8Array(opensslEncrypt(dir.path, original, [sender, group], options));
    const byRid = (der: Uint8Array, rid: Uint8Array) =>
      parseEnvelopePrefix(der).karis.find((k) => hex(k.recipients[0]!.rid) === hex(rid));
    const senderBefore = byRid(stored, sender.recipientId)!;
    expect(byRid(stored, group.recipientId)).toBeDefined();
    const recrypted = recryptDer(stored, deviceKeys(group, laptop, 'null'));
    expect(recrypted.length).toBe(stored.length);
    // the sender's own recipient info is byte-identical; the group's now names the laptop
    const senderAfter = byRid(recrypted, sender.recipientId)!;
    expect(senderAfter.tlv.offset).toBe(senderBefore.tlv.offset);
    expect(
      same(
        recrypted.subarray(senderAfter.tlv.offset, senderAfter.tlv.end),
        stored.subarray(senderBefore.tlv.offset, senderBefore.tlv.end),
      ),
    ).toBe(true);
    expect(byRid(recrypted, group.recipientId)).toBeUndefined();
    expect(byRid(recrypted, laptop.recipientId)).toBeDefined();
    const asLaptop = opensslDecrypt(dir.path, recrypted, laptop, 'DER');
    expect(asLaptop.stderr).toBe('');
    expect(same(asLaptop.output, original)).toBe(true);
    expect(same(decryptEnvelope(recrypted, laptop), original)).toBe(true);
    expect(same(opensslDecrypt(dir.path, recrypted, sender, 'DER').output, original)).toBe(true);
    expect(same(decryptEnvelope(stored, group), original)).toBe(true);
  });

  it("openssl's own S/MIME output recrypts as a message", () => {
    const stored = new Uint8Array(
      opensslEncrypt(dir.path, original, [group], { outform: 'SMIME' }),
    );
    const recrypted = recryptMessage(stored, deviceKeys(group, laptop));
    expect(planRecrypt(stored, 'message', deviceKeys(group, laptop)).kind).toBe('edits');
    expect(same(opensslDecrypt(dir.path, recrypted, laptop).output, original)).toBe(true);
  });
});

describe('input forms', () => {
  const rewrap = (b64: string, width: number, eol: string): Uint8Array =>
    new Uint8Array(
      Buffer.from((b64.match(new RegExp(`.{1,${width}}`, 'g')) ?? []).join(eol) + eol, 'latin1'),
    );

  it.each([
    [64, '\n'],
    [76, '\r\n'],
    [1000, '\r\n'],
    [1, '\n'],
    [100000, ''],
    [17, ' \t\r\n'],
  ])('base64 in lines of %i characters ending %j', (width, eol) => {
    const der = envelopeForGroup(original, group.certDer);
    const text = rewrap(Buffer.from(der).toString('base64'), width, eol);
    const keys = deviceKeys(group, laptop);
    const recrypted = recryptBase64(text, keys);
    expect(recrypted.length).toBe(text.length);
    const decoded = new Uint8Array(
      Buffer.from(Buffer.from(recrypted).toString('latin1'), 'base64'),
    );
    expect(same(decoded, recryptDer(der, keys))).toBe(true);
    expect(same(decryptEnvelope(decoded, laptop), original)).toBe(true);
    // whitespace and line breaks stay where they were
    expect(
      Buffer.from(recrypted)
        .toString('latin1')
        .replace(/[A-Za-z0-9+/=]/g, ''),
    ).toBe(
      Buffer.from(text)
        .toString('latin1')
        .replace(/[A-Za-z0-9+/=]/g, ''),
    );
  });

  it('a stored message with LF-only line endings (a Unix mail store)', () => {
    const stored = new Uint8Array(
      Buffer.from(
        Buffer.from(wrapMessage(original, group.certPem)).toString('latin1').replace(/\r\n/g, '\n'),
        'latin1',
      ),
    );
    const recrypted = recryptMessage(stored, deviceKeys(group, laptop));
    expect(recrypted.length).toBe(stored.length);
    expect(same(recrypted, stored)).toBe(false);
    expect(same(decryptMessage(recrypted, laptop), original)).toBe(true);
    expect(same(opensslDecrypt(dir.path, recrypted, laptop).output, original)).toBe(true);
  });

  it('a message with Content-Transfer-Encoding: binary', () => {
    const der = envelopeForGroup(original, group.certDer);
    const head = Buffer.from(
      'Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\nContent-Transfer-Encoding: binary\r\n\r\n',
      'latin1',
    );
    const message = new Uint8Array(Buffer.concat([head, der]));
    const recrypted = recryptMessage(message, deviceKeys(group, laptop));
    expect(same(recrypted.subarray(head.length), recryptDer(der, deviceKeys(group, laptop)))).toBe(
      true,
    );
    expect(same(decryptMessage(recrypted, laptop), original)).toBe(true);
  });

  it('recryptRange: a range after the prefix needs the prefix; with it, it matches the whole', () => {
    const stored = wrapMessage(original, group.certPem);
    const keys = deviceKeys(group, laptop);
    const whole = recryptMessage(stored, keys);
    const cut = 700;
    const tail = stored.subarray(cut);
    const head = stored.subarray(0, cut);
    expect(same(recryptRange(head, 0, 'message', keys, stored), whole.subarray(0, cut))).toBe(true);
    expect(same(recryptRange(tail, cut, 'message', keys, stored), whole.subarray(cut))).toBe(true);
    // without the prefix the range cannot be planned and comes back as it was
    expect(same(recryptRange(tail, cut, 'message', keys), tail)).toBe(true);
    // the plan asks for more when given too little
    const plan = planRecrypt(stored.subarray(0, 300), 'message', keys);
    expect(plan.kind).toBe('need-more');
    if (plan.kind === 'need-more') {
      expect(plan.atLeast).toBeGreaterThan(300);
      const again = planRecrypt(stored.subarray(0, plan.atLeast + 200), 'message', keys);
      expect(again.kind === 'edits' || again.kind === 'need-more').toBe(true);
    }
    // applyEdits patches in place and only inside its chunk
    const full = planRecrypt(stored, 'message', keys);
    if (full.kind !== 'edits') throw new Error('expected edits');
    const chunk = new Uint8Array(stored.subarray(500, 600));
    expect(applyEdits(chunk, 500, full.edits)).toBe(chunk);
    expect(same(chunk, whole.subarray(500, 600))).toBe(true);
  });

  it('a device id of another length leaves the message unchanged', () => {
    const stored = envelopeForGroup(original, group.certDer);
    const keys = {
      ...deviceKeys(group, laptop),
      deviceId: laptop.recipientId.subarray(0, laptop.recipientId.length - 1),
    };
    expect(planRecrypt(stored, 'der', keys)).toMatchObject({
      kind: 'unchanged',
      reason: 'id-length-mismatch',
    });
  });
});

describe("with the project's own certificates (certificates.ts)", () => {
  it('envelope to an issued group certificate, recrypted for an issued device, read by openssl', async () => {
    const now = new Date();
    const ca = await issueOwnerCa({ now });
    const g = randomScalar();
    const d = randomScalar();
    const groupCert = await issueGroupCertificate({
      ca: ca.certificate,
      caSecret: ca.secret,
      publicKey: publicPoint(g),
      address: 'bob@example.net',
      now,
    });
    const deviceCert = await issueDeviceCertificate({
      ca: ca.certificate,
      caSecret: ca.secret,
      publicKey: publicPoint(d),
      address: 'bob@example.net',
      name: 'laptop',
      now,
    });
    const groupParty = { secret: g, recipientId: recipientIdOf(groupCert) };
    const deviceParty = { secret: d, recipientId: recipientIdOf(deviceCert) };
    const stored = wrapMessage(original, groupCert);
    const recrypted = recryptMessage(stored, deviceKeys(groupParty, deviceParty));
    const certPath = join(dir.path, 'own-device.pem');
    const keyPath = join(dir.path, 'own-device.key');
    writeFileSync(certPath, toPem(deviceCert));
    writeFileSync(keyPath, privateKeyObject(d).export({ type: 'pkcs8', format: 'pem' }));
    const read = opensslDecrypt(dir.path, recrypted, { certPath, keyPath });
    expect(read.stderr).toBe('');
    expect(same(read.output, original)).toBe(true);
  });
});
