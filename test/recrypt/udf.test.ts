import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RecryptError } from '../../src/recrypt/errors.js';
import { publicPoint, randomScalar } from '../../src/recrypt/scalar.js';
import {
  KEY_CONTENT_TYPE,
  KEY_FINGERPRINT_LENGTH,
  base32Encode,
  compressionLevel,
  keyFingerprint,
  udfBinary,
  udfContentDigest,
  udfPresentation,
  type UdfDigest,
} from '../../src/recrypt/udf.js';

interface ContentDigestVector {
  section: string;
  data?: string;
  dataHex?: string;
  contentType: string;
  algorithm: UdfDigest;
  bits: number;
  udf: string;
  cdvHex?: string;
  typedInputHex?: string;
  tcdvHex?: string;
  bdsPrefixHex?: string;
  compressionLevel?: number;
}

const vectors = JSON.parse(
  readFileSync(new URL('../vectors/recrypt/udf.json', import.meta.url), 'utf8'),
) as { contentDigest: ContentDigestVector[] };

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const dataOf = (v: ContentDigestVector): Uint8Array =>
  v.dataHex !== undefined ? Buffer.from(v.dataHex, 'hex') : Buffer.from(v.data!, 'utf8');
const nodeHash = (algorithm: UdfDigest): string =>
  algorithm === 'sha2-512' ? 'sha512' : 'sha3-512';

/** An uncompressed P-256 SubjectPublicKeyInfo, the shape certificates.ts fingerprints. */
function p256Spki(point: Uint8Array): Uint8Array {
  const prefix = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');
  return Buffer.concat([prefix, point]);
}

describe('UDF content digests: the draft vectors', () => {
  it('the vector file holds every content digest the draft computes', () => {
    expect(vectors.contentDigest.map((v) => v.section).sort()).toEqual([
      '1.2',
      '4.2',
      '5.1.6',
      '5.1.7',
      '5.1.8',
      '5.1.9',
    ]);
  });

  for (const v of vectors.contentDigest) {
    describe(`§${v.section} ${v.algorithm} ${v.contentType}`, () => {
      it('gives the stated fingerprint', () => {
        expect(
          udfContentDigest(dataOf(v), v.contentType, { algorithm: v.algorithm, bits: v.bits }),
        ).toBe(v.udf);
        if (v.data !== undefined) {
          expect(
            udfContentDigest(v.data, v.contentType, { algorithm: v.algorithm, bits: v.bits }),
          ).toBe(v.udf);
        }
      });

      it('matches every intermediate value the draft prints', () => {
        const binary = udfBinary(dataOf(v), v.contentType, v.algorithm);
        expect(binary.length).toBe(65);
        const cdv = createHash(nodeHash(v.algorithm)).update(dataOf(v)).digest();
        if (v.cdvHex !== undefined) expect(cdv.toString('hex')).toBe(v.cdvHex);
        if (v.typedInputHex !== undefined) {
          expect(Buffer.concat([Buffer.from(`${v.contentType}:`), cdv]).toString('hex')).toBe(
            v.typedInputHex,
          );
        }
        if (v.tcdvHex !== undefined) expect(hex(binary.subarray(1))).toBe(v.tcdvHex);
        if (v.bdsPrefixHex !== undefined) {
          expect(hex(binary.subarray(0, v.bdsPrefixHex.length / 2))).toBe(v.bdsPrefixHex);
        }
        if (v.compressionLevel !== undefined) {
          expect(compressionLevel(binary.subarray(1))).toBe(v.compressionLevel);
        }
        expect(binary[0]! >> 3).toBe(v.algorithm === 'sha2-512' ? 12 : 10); // 'M' / 'K'
      });
    });
  }
});

describe('UDF presentation', () => {
  const data = 'UDF Data Value';

  it('rounds precision up to whole 20-bit groups of 4 characters', () => {
    for (const [bits, groups] of [
      [1, 1],
      [20, 1],
      [21, 2],
      [100, 5],
      [120, 6],
      [125, 7],
      [140, 7],
      [200, 10],
      [260, 13],
      [520, 26],
    ] as const) {
      const text = udfContentDigest(data, 'text/plain', { bits });
      expect(text.split('-').length).toBe(groups);
      expect(text).toMatch(/^[A-Z2-7]{4}(-[A-Z2-7]{4})*$/);
    }
  });

  it('a lower precision is a prefix of a higher one', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 64 }),
        fc.integer({ min: 1, max: 520 }),
        (bytes, bits) => {
          const low = udfContentDigest(bytes, 'application/octet-stream', { bits });
          const high = udfContentDigest(bytes, 'application/octet-stream', { bits: 520 });
          expect(high.startsWith(low)).toBe(true);
        },
      ),
    );
  });

  it('the content type changes the fingerprint', () => {
    expect(udfContentDigest(data, 'text/plain')).not.toBe(udfContentDigest(data, 'text/html'));
  });

  it('Base32 follows RFC 4648 §10 (no padding)', () => {
    const rfc: Array<[string, string]> = [
      ['', ''],
      ['f', 'MY'],
      ['fo', 'MZXQ'],
      ['foo', 'MZXW6'],
      ['foob', 'MZXW6YQ'],
      ['fooba', 'MZXW6YTB'],
      ['foobar', 'MZXW6YTBOI'],
    ];
    for (const [input, output] of rfc) expect(base32Encode(Buffer.from(input))).toBe(output);
  });

  it('compression levels follow trailing zero bits at 20, 30, 40 and 50', () => {
    const tcdv = (zeros: number): Uint8Array => {
      const bytes = new Uint8Array(64).fill(0xff);
      for (let bit = 0; bit < zeros; bit++) bytes[63 - (bit >> 3)]! &= ~(1 << (bit & 7));
      return bytes;
    };
    const expected = [
      [0, 0],
      [19, 0],
      [20, 1],
      [29, 1],
      [30, 2],
      [39, 2],
      [40, 3],
      [49, 3],
      [50, 4],
      [512, 4],
    ];
    for (const [zeros, level] of expected) expect(compressionLevel(tcdv(zeros!))).toBe(level);
  });

  it('refuses bad arguments with typed errors', () => {
    const bad: Array<() => unknown> = [
      () => udfContentDigest(42 as unknown as string, 'text/plain'),
      () => udfContentDigest(data, ''),
      () => udfContentDigest(data, 'text/plain', { bits: 0 }),
      () => udfContentDigest(data, 'text/plain', { bits: 521 }),
      () => udfContentDigest(data, 'text/plain', { bits: 12.5 }),
      () => udfContentDigest(data, 'text/plain', { algorithm: 'md5' as UdfDigest }),
      () => udfPresentation(new Uint8Array(0)),
      () => keyFingerprint(new Uint8Array(0)),
      () => keyFingerprint(Buffer.from('0401', 'hex')),
    ];
    for (const fn of bad) expect(fn).toThrow(RecryptError);
  });
});

describe('keyFingerprint', () => {
  it('is the PKIXKey SHA-2-512 UDF of the SPKI at 200 bits', () => {
    const spki = p256Spki(publicPoint(randomScalar()));
    expect(keyFingerprint(spki)).toBe(udfContentDigest(spki, KEY_CONTENT_TYPE, { bits: 200 }));
  });

  it('has the same length for every key', () => {
    const lengths = new Set<number>();
    for (let i = 0; i < 200; i++) {
      const text = keyFingerprint(p256Spki(publicPoint(randomScalar())));
      expect(text).toMatch(/^M[A-Z2-7]{3}(-[A-Z2-7]{4}){9}$/);
      lengths.add(text.length);
    }
    expect([...lengths]).toEqual([KEY_FINGERPRINT_LENGTH]);
    expect(KEY_FINGERPRINT_LENGTH).toBe(49);
  });
});
