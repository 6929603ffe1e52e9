/**
 * Recryption for remote list members against the real oracle: identities made
 * by the openssl CLI (self-signed and CA-issued, short and long DNs, serials of 1 to 21
 * bytes), a list group from the project's own certificates, posts from wrapMessage and
 * from `openssl cms -encrypt -stream`; `openssl cms -decrypt` with the remote's own key
 * must give back the original bytes, and nothing else may open or name anything.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  TAG,
  encodeOid,
  encodeTlv,
  readChildren,
  readTlv,
  tlvBytes,
} from '../../src/recrypt/der.js';
import { decryptMessage } from '../../src/recrypt/decrypt.js';
import { readRecipientCertificate } from '../../src/recrypt/envelope.js';
import { RecryptError } from '../../src/recrypt/errors.js';
import { recryptForCertificate, remoteRecipientId } from '../../src/recrypt/index.js';
import {
  composeKeys,
  invertScalar,
  multiplyScalars,
  recryptionKey,
} from '../../src/recrypt/scalar.js';
import { wrapMessage } from '../../src/recrypt/smime.js';
import { parseEnvelopePrefix, type EnvelopePrefix } from '../../src/recrypt/transform-prefix.js';
import type { Scalar } from '../../src/recrypt/types.js';
import { fixtureMessages, messageOfSize } from '../helpers/recrypt-messages.js';
import { opensslDecrypt, opensslEncrypt } from '../helpers/recrypt-openssl-pki.js';
import {
  LONG_DN,
  caIssuedRemote,
  listGroupKey,
  opensslSync,
  selfSignedRemote,
  type ListGroupIdentity,
  type RemoteIdentity,
} from '../helpers/recrypt-remote-pki.js';
import { derOf, smimeWith, splitMessage } from '../helpers/recrypt-smime-text.js';
import { tempDir } from '../helpers/tmp.js';

let dir: ReturnType<typeof tempDir>;
let list: ListGroupIdentity;
let otherGroup: ListGroupIdentity;
const REMOTE_KINDS = [
  'self-signed, short DN, 1-byte serial',
  'self-signed, long DN, 21-byte serial',
  'CA-issued, long DN, 8-byte serial',
] as const;
type RemoteKind = (typeof REMOTE_KINDS)[number];
const remotes = {} as Record<RemoteKind, RemoteIdentity>;

beforeAll(async () => {
  dir = tempDir('recrypt-remote-');
  list = await listGroupKey(dir.path, 'crypto-list@example.org', 'g1');
  otherGroup = await listGroupKey(dir.path, 'other-list@example.org', 'g1');
  remotes[REMOTE_KINDS[0]] = selfSignedRemote(dir.path, 'bob', '/CN=bob', '0x05');
  // first byte 0x80: DER needs a leading zero, 21 content bytes
  remotes[REMOTE_KINDS[1]] = selfSignedRemote(
    dir.path,
    'alexandra',
    LONG_DN,
    '0x80' + randomBytes(19).toString('hex'),
  );
  remotes[REMOTE_KINDS[2]] = caIssuedRemote(dir.path, 'carol', LONG_DN);
});
afterAll(() => dir?.remove());

/** rk = g_list·d⁻¹, as the blinded join would leave it at the gateway. */
function keysFor(remote: RemoteIdentity, ...groups: ListGroupIdentity[]): Map<string, Scalar> {
  return new Map(groups.map((g) => [g.groupId, recryptionKey(g.secret, remote.secret)]));
}

/** `code: message` of the RecryptError `run` throws (anything else fails the test). */
function refusal(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (error instanceof RecryptError) return `${error.code}: ${error.message}`;
    throw error;
  }
  return 'no error';
}

/** The envelope's bytes after recipientInfos (definite lengths, as wrapMessage writes). */
function afterRecipientInfos(der: Uint8Array, prefix: EnvelopePrefix): Buffer {
  return Buffer.from(der.subarray(prefix.recipientInfos.end, prefix.envelope.end));
}

/** The envelope's version and originatorInfo: everything before recipientInfos. */
function lead(der: Uint8Array, prefix: EnvelopePrefix): Buffer {
  return Buffer.from(der.subarray(prefix.envelope.contentOffset, prefix.recipientInfos.offset));
}

const post = fixtureMessages().find((m) => m.name === 'multipart.eml')!.bytes;

describe('remoteRecipientId', () => {
  it('reads any issuer DN and serial length, from DER or PEM, with the serial openssl reports', () => {
    const lengths = new Set<number>();
    for (const remote of Object.values(remotes)) {
      const id = remoteRecipientId(remote.certDer);
      const viaEnvelope = readRecipientCertificate(remote.certDer).recipientId;
      expect(Buffer.from(id).equals(viaEnvelope)).toBe(true);
      const pem = new Uint8Array(opensslSync(['x509', '-in', remote.certPath]));
      expect(Buffer.from(remoteRecipientId(pem)).equals(id)).toBe(true);
      const [, serial] = readChildren(id, readTlv(id, 0, { requireContent: true }));
      const reported = opensslSync(['x509', '-noout', '-serial', '-in', remote.certPath])
        .toString()
        .trim()
        .replace('serial=', '')
        .toLowerCase();
      const content = Buffer.from(id.subarray(serial!.contentOffset, serial!.end));
      expect(content.toString('hex').replace(/^00/, '')).toBe(reported);
      lengths.add(id.length);
    }
    // shorter than the project's 82 bytes, and longer than 256 (two length octets)
    expect(Math.min(...lengths)).toBeLessThan(82);
    expect(Math.max(...lengths)).toBeGreaterThan(256);
  });
});

describe.each(REMOTE_KINDS)('remote member: %s', (kind) => {
  const remote = () => remotes[kind];
  const another = () => remotes[REMOTE_KINDS[(REMOTE_KINDS.indexOf(kind) + 1) % 3]!];

  it('decrypts the post with its own key, byte for byte; nobody else does', () => {
    const stored = wrapMessage(post, list.certDer);
    const out = recryptForCertificate(stored, keysFor(remote(), list), remote().certDer);
    const asRemote = opensslDecrypt(dir.path, out, remote());
    expect(asRemote.stderr).toBe('');
    expect(asRemote.output.equals(post)).toBe(true);
    const key = { secret: remote().secret, recipientId: remoteRecipientId(remote().certDer) };
    expect(Buffer.from(decryptMessage(out, key)).equals(post)).toBe(true);
    expect(opensslDecrypt(dir.path, out, another()).ok).toBe(false);
    expect(opensslDecrypt(dir.path, out, list).ok).toBe(false);
    // the stored form stays the group's: the remote cannot read it
    expect(opensslDecrypt(dir.path, stored, remote()).ok).toBe(false);
  });

  it('keeps both recipient infos in order and names only the remote; the rest is verbatim', () => {
    const stored = wrapMessage(post, list.certDer);
    const out = recryptForCertificate(stored, keysFor(remote(), list), remote().certDer);
    const before = derOf(stored);
    const after = derOf(out);
    const old = parseEnvelopePrefix(before);
    const now = parseEnvelopePrefix(after);
    const remoteId = Buffer.from(remoteRecipientId(remote().certDer));
    expect(now.kind).toBe('enveloped');
    expect(now.karis.map((k) => k.wrapEncoding)).toEqual(['absent', 'null']);
    expect(now.otherRecipientInfos).toBe(0);
    now.karis.forEach((kari, i) => {
      const was = old.karis[i]!;
      expect(kari.recipients).toHaveLength(1);
      expect(Buffer.from(kari.recipients[0]!.rid).equals(remoteId)).toBe(true);
      expect(Buffer.from(kari.recipients[0]!.encryptedKey)).toEqual(
        Buffer.from(was.recipients[0]!.encryptedKey),
      );
      expect(Buffer.from(kari.wrapAlgorithm!)).toEqual(Buffer.from(was.wrapAlgorithm!));
      expect(Buffer.from(kari.keyAgreementOid)).toEqual(Buffer.from(was.keyAgreementOid));
      expect(kari.ukm).toEqual(was.ukm);
      expect(kari.originatorPoint!.bytes).toHaveLength(65);
      expect(Buffer.from(kari.originatorPoint!.bytes)).not.toEqual(
        Buffer.from(was.originatorPoint!.bytes),
      );
    });
    expect(Buffer.from(after).indexOf(Buffer.from(list.groupId, 'hex'))).toBe(-1);
    expect(lead(after, now).equals(lead(before, old))).toBe(true);
    expect(afterRecipientInfos(after, now).equals(afterRecipientInfos(before, old))).toBe(true);
  });
});

describe('the message around the envelope', () => {
  it('keeps the stored header fields and writes fresh S/MIME fields, base64 in 76-character CRLF lines', () => {
    const stored = wrapMessage(post, list.certDer);
    const remote = remotes[REMOTE_KINDS[1]];
    const out = recryptForCertificate(stored, keysFor(remote, list), remote.certDer);
    const was = splitMessage(stored);
    const now = splitMessage(out);
    // wrapMessage writes the same Content-* fields: the header block comes back identical
    expect(now.header).toBe(was.header);
    expect(now.header).toContain(
      'Content-Type: application/pkcs7-mime; smime-type=enveloped-data;\r\n name="smime.p7m"',
    );
    const lines = now.body.split('\r\n');
    expect(lines.pop()).toBe('');
    expect(lines.slice(0, -1).every((line) => line.length === 76)).toBe(true);
    expect(lines.at(-1)!.length).toBeLessThanOrEqual(76);
    expect(now.body).not.toMatch(/[^\r]\n/);
  });

  it('replaces the stored Content-* fields, adds MIME-Version if missing, and writes CRLF', () => {
    const stored = wrapMessage(post, list.certDer);
    const header =
      'Received: from mx.example.org\n\tby list.example.org; Sun, 29 Nov 2026 06:00:00 +0000\n' +
      'From: poster@example.org\nSubject: folded\n subject line\n' +
      'Content-Type: application/x-pkcs7-mime; name=smime.p7m\n' +
      'Content-Description: S/MIME Encrypted Message\n' +
      'Content-Transfer-Encoding: base64\n' +
      'Content-Disposition: attachment; filename=smime.p7m';
    const odd = smimeWith(header, derOf(stored), [64], '\n');
    const remote = remotes[REMOTE_KINDS[0]];
    const out = recryptForCertificate(odd, keysFor(remote, list), remote.certDer);
    const { header: written } = splitMessage(out);
    expect(written).toBe(
      'Received: from mx.example.org\r\n\tby list.example.org; Sun, 29 Nov 2026 06:00:00 +0000\r\n' +
        'From: poster@example.org\r\nSubject: folded\r\n subject line\r\n' +
        'MIME-Version: 1.0\r\n' +
        'Content-Type: application/pkcs7-mime; smime-type=enveloped-data;\r\n name="smime.p7m"\r\n' +
        'Content-Transfer-Encoding: base64\r\n' +
        'Content-Disposition: attachment; filename="smime.p7m"',
    );
    expect(opensslDecrypt(dir.path, out, remote).output.equals(post)).toBe(true);
  });

  it('keeps originatorInfo and unprotectedAttrs byte for byte', () => {
    const remote = remotes[REMOTE_KINDS[2]];
    const stored = wrapMessage(post, list.certDer);
    const der = derOf(stored);
    const [version, recipientInfos, contentInfo] = readChildren(
      der,
      parseEnvelopePrefix(der).envelope,
    );
    // OriginatorInfo [0] { certs [0] { a sender certificate } }; one unprotected attribute
    const originatorInfo = encodeTlv(
      TAG.context(0),
      encodeTlv(TAG.context(0), remotes[REMOTE_KINDS[0]].certDer),
    );
    const attribute = encodeTlv(
      TAG.SEQUENCE,
      encodeOid('1.3.6.1.4.1.99999.1'),
      encodeTlv(TAG.SET, encodeTlv(0x0c, Buffer.from('list post'))),
    );
    const unprotectedAttrs = encodeTlv(TAG.context(1), attribute);
    const envelope = encodeTlv(
      TAG.SEQUENCE,
      tlvBytes(der, version!),
      originatorInfo,
      tlvBytes(der, recipientInfos!),
      tlvBytes(der, contentInfo!),
      unprotectedAttrs,
    );
    const withExtras = encodeTlv(
      TAG.SEQUENCE,
      encodeOid('1.2.840.113549.1.7.3'),
      encodeTlv(TAG.context(0), envelope),
    );
    const input = smimeWith(splitMessage(stored).header, withExtras, [76]);
    expect(opensslDecrypt(dir.path, input, list).output.equals(post)).toBe(true);

    const out = derOf(recryptForCertificate(input, keysFor(remote, list), remote.certDer));
    const prefix = parseEnvelopePrefix(out);
    expect(lead(out, prefix)).toEqual(Buffer.concat([tlvBytes(der, version!), originatorInfo]));
    expect(afterRecipientInfos(out, prefix)).toEqual(
      Buffer.concat([tlvBytes(der, contentInfo!), unprotectedAttrs]),
    );
    const asRemote = opensslDecrypt(
      dir.path,
      smimeWith(splitMessage(stored).header, out, [76]),
      remote,
    );
    expect(asRemote.stderr).toBe('');
    expect(asRemote.output.equals(post)).toBe(true);
  });

  it('reads a base64 body with odd line lengths, and a binary body', () => {
    const stored = wrapMessage(post, list.certDer);
    const remote = remotes[REMOTE_KINDS[2]];
    const { header } = splitMessage(stored);
    const der = derOf(stored);
    const ragged = smimeWith(header, der, [1, 75, 13, 98, 4, 77, 3]);
    const binary = Buffer.concat([
      Buffer.from(
        header.replace('Transfer-Encoding: base64', 'Transfer-Encoding: binary') + '\r\n\r\n',
        'latin1',
      ),
      der,
      Buffer.from('\r\n', 'latin1'),
    ]);
    for (const input of [ragged, binary]) {
      const out = recryptForCertificate(input, keysFor(remote, list), remote.certDer);
      expect(opensslDecrypt(dir.path, out, remote).output.equals(post)).toBe(true);
    }
  });
});

describe('what the remote can and cannot get', () => {
  it('reads posts to a former list group and, with rk composed by rotation, to the new one', async () => {
    const remote = remotes[REMOTE_KINDS[1]];
    const rotated = await listGroupKey(dir.path, 'crypto-list@example.org', 'g2');
    // δ = g_new·g_old⁻¹ goes to the gateway once; it composes rk_new = δ·rk_old itself
    const delta = multiplyScalars(rotated.secret, invertScalar(list.secret));
    const rkOld = recryptionKey(list.secret, remote.secret);
    const keys = new Map([
      [rotated.groupId, composeKeys(delta, rkOld)],
      [list.groupId, rkOld],
    ]);
    for (const group of [list, rotated]) {
      const stored = wrapMessage(post, group.certDer);
      const out = recryptForCertificate(stored, keys, remote.certDer);
      expect(opensslDecrypt(dir.path, out, remote).output.equals(post)).toBe(true);
    }
  });

  it('reads AuthEnvelopedData (AES-256-GCM)', () => {
    const remote = remotes[REMOTE_KINDS[0]];
    const stored = wrapMessage(post, list.certDer, { contentEncryption: 'aes-256-gcm' });
    const out = recryptForCertificate(stored, keysFor(remote, list), remote.certDer);
    expect(splitMessage(out).header).toContain('smime-type=authEnveloped-data;');
    expect(parseEnvelopePrefix(derOf(out)).kind).toBe('authEnveloped');
    const asRemote = opensslDecrypt(dir.path, out, remote);
    expect(asRemote.stderr).toBe('');
    expect(asRemote.output.equals(post)).toBe(true);
  });

  it("reads an end-to-end sender's streamed BER post; the other recipient is dropped", () => {
    const remote = remotes[REMOTE_KINDS[2]];
    const bystander = remotes[REMOTE_KINDS[0]];
    const stored = opensslEncrypt(dir.path, post, [list, bystander], {
      stream: true,
      outform: 'SMIME',
    });
    expect(parseEnvelopePrefix(derOf(stored)).envelope.end).toBe(Infinity);
    const out = recryptForCertificate(stored, keysFor(remote, list), remote.certDer);
    const asRemote = opensslDecrypt(dir.path, out, remote);
    expect(asRemote.stderr).toBe('');
    expect(asRemote.output.equals(post)).toBe(true);
    const prefix = parseEnvelopePrefix(derOf(out));
    expect(prefix.karis).toHaveLength(1);
    expect(prefix.otherRecipientInfos).toBe(0);
    const der = Buffer.from(derOf(out));
    expect(der.indexOf(Buffer.from(remoteRecipientId(bystander.certDer)))).toBe(-1);
    expect(opensslDecrypt(dir.path, out, bystander).ok).toBe(false);
  });

  it('recrypts a 5 MB post', () => {
    const remote = remotes[REMOTE_KINDS[1]];
    const big = messageOfSize(5 * 1024 * 1024);
    const stored = wrapMessage(big.bytes, list.certDer);
    const out = recryptForCertificate(stored, keysFor(remote, list), remote.certDer);
    expect(out.length - stored.length).toBeLessThan(1024);
    const asRemote = opensslDecrypt(dir.path, out, remote);
    expect(asRemote.output.equals(big.bytes)).toBe(true);
  });
});

describe('refusals: a RecryptError and no output', () => {
  const remote = () => remotes[REMOTE_KINDS[0]];
  const recrypt = (input: Uint8Array, keys = keysFor(remote(), list), cert = remote().certDer) =>
    refusal(() => recryptForCertificate(input, keys, cert));

  /** The stored post with the originator point of recipient info `index` patched. */
  function withPoint(index: number, patch: (point: Uint8Array) => void): Buffer {
    const stored = wrapMessage(post, list.certDer);
    const der = derOf(stored);
    const point = parseEnvelopePrefix(der).karis[index]!.originatorPoint!;
    patch(der.subarray(point.offset, point.offset + point.bytes.length));
    return smimeWith(splitMessage(stored).header, der, [76]);
  }

  it('refuses a bad originator point in either recipient info before multiplying any', () => {
    const offCurve = (point: Uint8Array) => {
      point[64] = point[64]! ^ 1;
    };
    const zero = (point: Uint8Array) => point.fill(0, 1);
    expect(recrypt(withPoint(0, offCurve))).toBe(
      'invalid-point: recipient info 1: originator point is not on P-256',
    );
    expect(recrypt(withPoint(1, offCurve))).toBe(
      'invalid-point: recipient info 2: originator point is not on P-256',
    );
    expect(recrypt(withPoint(1, zero))).toBe(
      'invalid-point: recipient info 2: originator point is not on P-256',
    );
  });

  it('refuses a post for another group', () => {
    expect(recrypt(wrapMessage(post, otherGroup.certDer))).toBe(
      'no-recipient: no KeyAgreeRecipientInfo names one of the groups',
    );
  });

  it('refuses what is not a whole, well-formed S/MIME envelope', () => {
    const stored = wrapMessage(post, list.certDer);
    const { header, body } = splitMessage(stored);
    const der = derOf(stored);
    const text = (bodyText: string) => Buffer.from(header + '\r\n\r\n' + bodyText, 'latin1');
    expect(recrypt(post)).toBe('unsupported: not an S/MIME enveloped message (not-smime)');
    expect(recrypt(smimeWith(header, der.subarray(0, 1500), [76]))).toBe(
      'malformed-der: the message ends inside the ContentInfo',
    );
    expect(recrypt(text(body.replace(/\//g, '_')))).toBe(
      'malformed-der: base64 body: a character outside the alphabet',
    );
    expect(recrypt(text(`${body.slice(0, 40)}=${body.slice(40)}`))).toBe(
      'malformed-der: base64 body: data after the padding',
    );
    const groups = Buffer.from(der).toString('base64').replace(/=+$/, '');
    // whole 4-character groups and one character more: no byte ends in it
    expect(recrypt(text(groups.slice(0, groups.length - (groups.length % 4) + 1)))).toBe(
      'malformed-der: base64 body: incomplete final group',
    );
    expect(recrypt(smimeWith(header, Buffer.concat([der, Buffer.from([5, 0])]), [76]))).toBe(
      'malformed-der: data after the ContentInfo',
    );
    expect(recrypt(text(''))).toMatch(/^malformed-der: DER truncated/);
  });

  it('refuses bad arguments: no keys, non-hex ids, a bad rk, a certificate that is not P-256', () => {
    const stored = wrapMessage(post, list.certDer);
    const rk = recryptionKey(list.secret, remote().secret);
    expect(recrypt(stored, new Map())).toMatch(/^invalid-argument: groupIds/);
    expect(recrypt(stored, new Map([[list.groupId.toUpperCase(), rk]]))).toMatch(
      /^invalid-argument: groupIds/,
    );
    expect(recrypt(stored, new Map([[list.groupId, 0n]]))).toMatch(/^invalid-scalar/);
    const p384 = selfSignedRemote(dir.path, 'p384', '/CN=p384', '0x0101', 'P-384');
    expect(recrypt(stored, undefined, p384.certDer)).toBe(
      'unsupported: certificate key is not EC P-256',
    );
  });
});
