/** The DER reader: offsets, and each way it refuses input (X.690 §8.1, §10.1). */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import {
  DerTruncatedError,
  checkTree,
  encodeLength,
  encodeOid,
  encodeTlv,
  encodeTree,
  encodeTreeAround,
  readChildren,
  readTlv,
} from '../../src/recrypt/der.js';
import { RecryptError } from '../../src/recrypt/errors.js';
import { requireBinary } from '../helpers/binaries.js';

const codeOf = (run: () => unknown): string | undefined => {
  try {
    run();
    return undefined;
  } catch (error) {
    if (error instanceof DerTruncatedError) return `truncated:${error.needed}`;
    return error instanceof RecryptError ? error.code : 'untyped';
  }
};

describe('readTlv', () => {
  it('reports tag, header length, content offset and length, short and long forms', () => {
    const short = Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x05);
    expect(readTlv(short, 0)).toEqual({
      tag: 0x30,
      offset: 0,
      headerLength: 2,
      contentOffset: 2,
      contentLength: 3,
      end: 5,
      constructed: true,
    });
    const long = encodeTlv(0x04, new Uint8Array(300));
    expect(readTlv(long, 0)).toMatchObject({
      tag: 0x04,
      headerLength: 4,
      contentOffset: 4,
      contentLength: 300,
      end: 304,
      constructed: false,
    });
    const children = readChildren(short, readTlv(short, 0));
    expect(children.map((c) => [c.tag, c.offset, c.contentLength])).toEqual([[0x02, 2, 1]]);
  });

  it('refuses indefinite lengths unless allowed, and then only on constructed elements', () => {
    const indefinite = Uint8Array.of(0x30, 0x80, 0x02, 0x01, 0x05, 0x00, 0x00);
    expect(codeOf(() => readTlv(indefinite, 0))).toBe('malformed-der');
    expect(readTlv(indefinite, 0, { allowIndefinite: true })).toMatchObject({
      contentLength: -1,
      end: Infinity,
    });
    expect(
      codeOf(() => readTlv(Uint8Array.of(0x04, 0x80, 0, 0), 0, { allowIndefinite: true })),
    ).toBe('malformed-der');
  });

  it('refuses non-minimal lengths, lengths of more than 4 octets and high tag numbers', () => {
    expect(codeOf(() => readTlv(Uint8Array.of(0x04, 0x81, 0x05, 1, 2, 3, 4, 5), 0))).toBe(
      'malformed-der',
    );
    expect(
      codeOf(() => readTlv(Uint8Array.of(0x04, 0x82, 0x00, 0x85, ...new Uint8Array(0x85)), 0)),
    ).toBe('malformed-der');
    expect(codeOf(() => readTlv(Uint8Array.of(0x04, 0x85, 1, 0, 0, 0, 0), 0))).toBe(
      'malformed-der',
    );
    expect(codeOf(() => readTlv(Uint8Array.of(0x1f, 0x81, 0x01, 0x00), 0))).toBe('malformed-der');
  });

  it('tells truncation (how many bytes are needed) from lengths beyond the parent', () => {
    const element = encodeTlv(0x04, new Uint8Array(300));
    expect(codeOf(() => readTlv(element.subarray(0, 1), 0))).toBe('truncated:2');
    expect(codeOf(() => readTlv(element.subarray(0, 3), 0))).toBe('truncated:4');
    expect(codeOf(() => readTlv(element.subarray(0, 10), 0, { requireContent: true }))).toBe(
      'truncated:304',
    );
    expect(readTlv(element.subarray(0, 10), 0).end).toBe(304); // header alone is fine
    expect(codeOf(() => readTlv(element, 0, { limit: 100 }))).toBe('malformed-der');
    expect(
      codeOf(() => readTlv(Uint8Array.of(0x04, 0x84, 0x7f, 0xff, 0xff, 0xff), 0, { limit: 6 })),
    ).toBe('malformed-der');
  });

  it('checkTree bounds nesting depth', () => {
    let nested = encodeTlv(0x05);
    for (let i = 0; i < 40; i++) nested = encodeTlv(0x30, nested);
    expect(codeOf(() => checkTree(nested, 0, nested.length))).toBe('malformed-der');
    expect(checkTree(nested, 0, nested.length, 64).end).toBe(nested.length);
  });
});

describe('encoder', () => {
  it('writes definite lengths that openssl asn1parse reads back', () => {
    expect([...encodeLength(0x7f)]).toEqual([0x7f]);
    expect([...encodeLength(0x80)]).toEqual([0x81, 0x80]);
    expect([...encodeLength(0x1234)]).toEqual([0x82, 0x12, 0x34]);
    const tree = encodeTree({
      tag: 0x30,
      children: [
        encodeOid('1.2.840.113549.1.9.16.1.23'),
        { tag: 0xa0, children: [encodeTlv(0x04, new Uint8Array(1000))] },
      ],
    });
    expect(tree).toEqual(
      encodeTlv(
        0x30,
        encodeOid('1.2.840.113549.1.9.16.1.23'),
        encodeTlv(0xa0, encodeTlv(0x04, new Uint8Array(1000))),
      ),
    );
    const parsed = execFileSync(requireBinary('openssl'), ['asn1parse', '-inform', 'DER'], {
      input: tree,
    }).toString();
    expect(parsed).toContain('id-smime-ct-authEnvelopedData');
    expect(parsed).toMatch(/OCTET STRING/);
  });

  it('encodeTreeAround splits around a hole so that head ‖ content ‖ tail equals the full tree', () => {
    const content = new Uint8Array(300).map((_, i) => i & 0xff);
    const tree = (inner: Uint8Array | { hole: number }) => ({
      tag: 0x30,
      children: [
        Uint8Array.of(0x02, 0x01, 0x05),
        { tag: 0x80, children: [inner] },
        Uint8Array.of(0x05, 0x00),
      ],
    });
    const whole = encodeTree(tree(content));
    const { head, holeLength, tail } = encodeTreeAround(tree({ hole: content.length }));
    expect(holeLength).toBe(300);
    expect(Buffer.concat([head, content, tail]).equals(Buffer.from(whole))).toBe(true);
    expect(() => encodeTree(tree({ hole: 4 }))).toThrow(RecryptError);
  });
});
