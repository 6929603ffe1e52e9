/**
 * A table of broken inputs built from a real envelope (docs/design.md §2 "never multiply an
 * unchecked point"): truncated, garbled, wrong OIDs, indefinite and
 * absurd lengths, points off the curve / identity / another curve's, oversized, too deep.
 */
import { createECDH } from 'node:crypto';
import {
  encodeOid,
  encodeTlv,
  encodeTree,
  readChildren,
  tlvBytes,
  type DerNode,
} from '../../src/recrypt/der.js';
import { parseEnvelopePrefix } from '../../src/recrypt/transform-prefix.js';
import type { UnchangedReason } from '../../src/recrypt/transform-types.js';

export interface BadInput {
  name: string;
  der: Uint8Array;
  /** The reason planRecrypt must give on the complete input ('truncated' included). */
  reason: UnchangedReason;
}

function patch(der: Uint8Array, offset: number, bytes: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(der);
  out.set(bytes, offset);
  return out;
}

function splice(
  der: Uint8Array,
  offset: number,
  remove: number,
  insert: ArrayLike<number>,
): Uint8Array {
  return new Uint8Array(
    Buffer.concat([
      der.subarray(0, offset),
      Uint8Array.from(insert),
      der.subarray(offset + remove),
    ]),
  );
}

/** `der` (from envelopeForGroup, two recipient infos) broken in every way the table lists. */
export function badInputs(der: Uint8Array): BadInput[] {
  const prefix = parseEnvelopePrefix(der);
  const kari = prefix.karis[0]!;
  const point = kari.originatorPoint!;
  const set = prefix.recipientInfos;
  const out: BadInput[] = [];

  out.push({ name: 'empty', der: new Uint8Array(0), reason: 'truncated' });
  out.push({
    name: 'truncated inside recipientInfos',
    der: der.subarray(0, set.contentOffset + 50),
    reason: 'truncated',
  });
  out.push({
    name: 'truncated inside the originator point',
    der: der.subarray(0, point.offset + 30),
    reason: 'truncated',
  });
  out.push({
    name: 'garbage',
    der: Uint8Array.from({ length: 600 }, (_, i) => (i * 37 + 11) & 0xff),
    reason: 'not-envelope',
  });
  out.push({ name: 'not a SEQUENCE', der: patch(der, 0, [0x31]), reason: 'not-envelope' });
  out.push({ name: 'high tag number form', der: patch(der, 0, [0x3f]), reason: 'malformed' });
  // 1.2.840.113549.1.7.2 signedData instead of .3 envelopedData
  out.push({
    name: 'wrong content type OID (signedData)',
    der: patch(der, 14, [0x02]),
    reason: 'not-envelope',
  });
  out.push({
    name: 'originator key OID is not id-ecPublicKey',
    der: patch(der, point.offset - 5, [0x00]),
    reason: 'invalid-point',
  });
  out.push({
    name: 'recipientInfos not a SET',
    der: patch(der, set.offset, [0x30]),
    reason: 'malformed',
  });
  out.push({
    name: 'indefinite length on recipientInfos',
    der: splice(der, set.offset + 1, set.headerLength - 1, [0x80]),
    reason: 'malformed',
  });
  out.push({
    name: 'indefinite length on a KeyAgreeRecipientInfo',
    der: splice(der, kari.tlv.offset + 1, kari.tlv.headerLength - 1, [0x80]),
    reason: 'malformed',
  });
  out.push({
    name: 'absurd recipientInfos length (2 GiB)',
    der: splice(der, set.offset + 1, set.headerLength - 1, [0x84, 0x7f, 0xff, 0xff, 0xff]),
    reason: 'malformed',
  });
  out.push({
    name: 'absurd version length',
    der: splice(der, prefix.envelope.contentOffset + 1, 1, [0x84, 0x7f, 0xff, 0xff, 0xff]),
    reason: 'malformed',
  });
  out.push({
    name: 'KARI longer than its SET',
    der: patch(der, prefix.karis[1]!.tlv.offset + 2, [0xff]),
    reason: 'malformed',
  });
  out.push({
    name: 'length of 5 octets',
    der: splice(der, set.offset + 1, set.headerLength - 1, [0x85, 0, 0, 0, 1, 0xc4]),
    reason: 'malformed',
  });
  out.push({
    name: 'non-minimal length',
    der: splice(der, prefix.envelope.contentOffset + 1, 1, [0x81, 0x01]),
    reason: 'malformed',
  });

  const offCurve = new Uint8Array(der);
  offCurve[point.offset + 64] = offCurve[point.offset + 64]! ^ 0x01;
  out.push({ name: 'originator point off the curve', der: offCurve, reason: 'invalid-point' });
  out.push({
    name: 'identity point (0x04 and zeros)',
    der: patch(
      der,
      point.offset,
      new Uint8Array(65).fill(0, 0).map((_, i) => (i === 0 ? 4 : 0)),
    ),
    reason: 'invalid-point',
  });
  out.push({
    name: 'x = p (out of range), y from the original',
    der: patch(
      der,
      point.offset + 1,
      Buffer.from('ffffffff00000001000000000000000000000000ffffffffffffffffffffffff', 'hex'),
    ),
    reason: 'invalid-point',
  });
  const k1 = createECDH('secp256k1');
  out.push({
    name: 'a point from secp256k1',
    der: patch(der, point.offset, k1.generateKeys()),
    reason: 'invalid-point',
  });
  // Hybrid encoding (0x06/0x07 ‖ x ‖ y) with the parity bit contradicting y: invalid for
  // everyone. (With the right parity OpenSSL accepts it; the transform refuses any
  // non-uncompressed form, as changing it to 0x04 would alter a field it must keep.)
  const wrongParity = 0x07 - (point.bytes[64]! & 1);
  out.push({
    name: 'hybrid point encoding, wrong parity',
    der: patch(der, point.offset, [wrongParity]),
    reason: 'invalid-point',
  });

  // Rebuilt envelopes: too many recipient infos, too deep nesting.
  const kariBytes = der.subarray(kari.tlv.offset, kari.tlv.end);
  const rebuild = (infos: DerNode[]): Uint8Array =>
    encodeTree({
      tag: 0x30,
      children: [
        der.subarray(4, 15), // the envelopedData OID element
        {
          tag: 0xa0,
          children: [
            {
              tag: 0x30,
              children: [
                Uint8Array.of(2, 1, 2),
                { tag: 0x31, children: infos },
                der.subarray(set.end, prefix.envelope.end),
              ],
            },
          ],
        },
      ],
    });
  out.push({
    name: 'oversized: 400 recipient infos (> 64 KiB)',
    der: rebuild(Array.from({ length: 400 }, () => kariBytes)),
    reason: 'too-large',
  });
  // A P-384 originator key (97-byte point, namedCurve secp384r1) in place of the first one.
  const [, , kea, reks] = readChildren(der, kari.tlv);
  const p384 = createECDH('secp384r1').generateKeys();
  const p384Kari = encodeTlv(
    0xa1,
    Uint8Array.of(2, 1, 3),
    encodeTlv(
      0xa0,
      encodeTlv(
        0xa1,
        encodeTlv(0x30, encodeOid('1.2.840.10045.2.1'), encodeOid('1.3.132.0.34')),
        encodeTlv(0x03, Uint8Array.of(0), p384),
      ),
    ),
    tlvBytes(der, kea!),
    tlvBytes(der, reks!),
  );
  out.push({
    name: 'a P-384 originator key',
    der: rebuild([p384Kari, der.subarray(prefix.karis[1]!.tlv.offset, prefix.karis[1]!.tlv.end)]),
    reason: 'invalid-point',
  });
  let deep: Uint8Array = encodeTlv(0x04, Uint8Array.of(1));
  for (let i = 0; i < 60; i++) deep = encodeTlv(0x30, deep);
  out.push({
    name: 'nesting 60 deep inside recipientInfos',
    der: rebuild([kariBytes, deep]),
    reason: 'malformed',
  });
  return out;
}
