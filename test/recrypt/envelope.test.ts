/**
 * envelopeForGroup against docs/design.md §2 and RFC 5753: two KeyAgreeRecipientInfos (wrap
 * parameters absent / NULL) wrapping one content key, read by openssl; SharedInfo vectors.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  eccCmsSharedInfo,
  envelopeForGroup,
  readRecipientCertificate,
  wrapAlgorithmIdentifier,
} from '../../src/recrypt/envelope.js';
import { OID, parseEnvelopePrefix } from '../../src/recrypt/transform-prefix.js';
import { oidContent, readTlv } from '../../src/recrypt/der.js';
import { recryptDer } from '../../src/recrypt/transform.js';
import { decryptEnvelope } from '../../src/recrypt/decrypt.js';
import { recipientIdOf } from '../../src/recrypt/certificates.js';
import { validatePoint } from '../../src/recrypt/scalar.js';
import { RecryptError } from '../../src/recrypt/errors.js';
import type { WrapEncoding } from '../../src/recrypt/types.js';
import { makeOpensslPki, opensslDecrypt, type Party } from '../helpers/recrypt-openssl-pki.js';
import { fixtureMessages } from '../helpers/recrypt-messages.js';
import { deviceKeys, hex } from '../helpers/recrypt-keys.js';
import { requireBinary } from '../helpers/binaries.js';
import { tempDir } from '../helpers/tmp.js';

let dir: ReturnType<typeof tempDir>;
let group: Party;
let laptop: Party;
const original = fixtureMessages().find((m) => m.name === '8bit.eml')!.bytes;
const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));

beforeAll(() => {
  dir = tempDir('recrypt-envelope-');
  const pki = makeOpensslPki(dir.path);
  group = pki.issue('group');
  laptop = pki.issue('laptop');
});
afterAll(() => dir?.remove());

describe('ECC-CMS-SharedInfo', () => {
  const vectors = JSON.parse(
    readFileSync(join(import.meta.dirname, '../vectors/recrypt/ecc-cms-shared-info.json'), 'utf8'),
  ) as {
    vectors: Array<{ wrapEncoding: WrapEncoding; wrapAlgorithm: string; sharedInfo: string }>;
  };
  it.each(vectors.vectors)('wrap parameters $wrapEncoding', (v) => {
    expect(hex(wrapAlgorithmIdentifier(v.wrapEncoding))).toBe(v.wrapAlgorithm);
    expect(hex(eccCmsSharedInfo(wrapAlgorithmIdentifier(v.wrapEncoding), null))).toBe(v.sharedInfo);
  });
});

describe('envelopeForGroup', () => {
  it('writes EnvelopedData with two KeyAgreeRecipientInfos for the group, as docs/design.md §2 says', () => {
    const der = envelopeForGroup(original, group.certDer);
    const prefix = parseEnvelopePrefix(der);
    expect(prefix.kind).toBe('enveloped');
    expect(der[readTlv(der, prefix.envelope.contentOffset).contentOffset]).toBe(2); // version 2
    expect(prefix.otherRecipientInfos).toBe(0);
    expect(prefix.karis.map((k) => k.wrapEncoding)).toEqual(['absent', 'null']);
    for (const kari of prefix.karis) {
      expect(hex(kari.keyAgreementOid)).toBe(hex(oidContent(OID.stdDhSha256Kdf)));
      expect(hex(kari.wrapOid!)).toBe(hex(oidContent(OID.aes256Wrap)));
      expect(kari.ukm).toBeNull();
      expect(kari.originatorOnP256).toBe(true);
      expect(kari.originatorPoint!.bytes.length).toBe(65);
      expect(validatePoint(kari.originatorPoint!.bytes)).toBe(true);
      expect(kari.recipients).toHaveLength(1);
      expect(hex(kari.recipients[0]!.rid)).toBe(hex(group.recipientId));
      expect(kari.recipients[0]!.encryptedKey.length).toBe(40);
    }
    // each recipient info has its own ephemeral key
    expect(hex(prefix.karis[0]!.originatorPoint!.bytes)).not.toBe(
      hex(prefix.karis[1]!.originatorPoint!.bytes),
    );
    // openssl agrees on the structure
    const parsed = execFileSync(requireBinary('openssl'), ['asn1parse', '-inform', 'DER', '-i'], {
      input: der,
    }).toString();
    expect(parsed.match(/dhSinglePass-stdDH-sha256kdf-scheme/g)).toHaveLength(2);
    expect(parsed).toContain('aes-256-cbc');
  });

  it('the rid is the IssuerAndSerialNumber certificates.ts computes', () => {
    expect(hex(recipientIdOf(group.certDer))).toBe(hex(group.recipientId));
    expect(hex(readRecipientCertificate(group.certPem).recipientId)).toBe(hex(group.recipientId));
  });

  it('both recipient infos wrap the same content key, and openssl reads each', () => {
    const der = envelopeForGroup(original, group.certDer);
    expect(same(opensslDecrypt(dir.path, der, group, 'DER').output, original)).toBe(true);
    // Recrypting the 'absent' one for a device leaves the group only the NULL one.
    const onlyNull = recryptDer(der, deviceKeys(group, laptop, 'absent'));
    const asGroup = opensslDecrypt(dir.path, onlyNull, group, 'DER');
    expect(asGroup.stderr).toBe('');
    expect(same(asGroup.output, original)).toBe(true);
    expect(same(decryptEnvelope(onlyNull, group), original)).toBe(true);
    expect(same(opensslDecrypt(dir.path, onlyNull, laptop, 'DER').output, original)).toBe(true);
  });

  it('AES-256-GCM gives AuthEnvelopedData that openssl and decryptEnvelope read', () => {
    const der = envelopeForGroup(original, group.certDer, { contentEncryption: 'aes-256-gcm' });
    expect(parseEnvelopePrefix(der).kind).toBe('authEnveloped');
    expect(same(opensslDecrypt(dir.path, der, group, 'DER').output, original)).toBe(true);
    expect(same(decryptEnvelope(der, group), original)).toBe(true);
    // a flipped ciphertext byte fails authentication in both
    const tampered = new Uint8Array(der);
    tampered[tampered.length - 20] = tampered[tampered.length - 20]! ^ 1;
    expect(opensslDecrypt(dir.path, tampered, group, 'DER').ok).toBe(false);
    expect(() => decryptEnvelope(tampered, group)).toThrow(RecryptError);
  });

  it('each call uses a fresh content key, IV and ephemeral keys', () => {
    const a = envelopeForGroup(original, group.certDer);
    const b = envelopeForGroup(original, group.certDer);
    expect(a.length).toBe(b.length);
    expect(same(a, b)).toBe(false);
  });

  it('refuses certificates that are not P-256 with a typed error', () => {
    const rsaKey = join(dir.path, 'rsa.key');
    const rsaCert = join(dir.path, 'rsa.pem');
    const openssl = requireBinary('openssl');
    execFileSync(
      openssl,
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        rsaKey,
        '-subj',
        '/CN=rsa',
        '-out',
        rsaCert,
        '-days',
        '1',
      ],
      { stdio: 'ignore' },
    );
    const codeOf = (cert: Uint8Array): string | undefined => {
      try {
        envelopeForGroup(original, cert);
        return undefined;
      } catch (error) {
        return error instanceof RecryptError ? error.code : 'untyped';
      }
    };
    expect(codeOf(new Uint8Array(readFileSync(rsaCert)))).toBe('unsupported');
    expect(codeOf(Uint8Array.of(1, 2, 3))).toBe('malformed-der');
    expect(codeOf(group.certDer.subarray(0, 100))).toBe('malformed-der');
  });
});
