/**
 * Recryption for a remote list member: someone on another server whose stock
 * client holds their own S/MIME P-256 certificate, issued by any CA or self-signed.
 *
 * The in-place transform (transform.ts) cannot serve them: their IssuerAndSerialNumber
 * has its own length, so the message changes length. This rebuilds the envelope around
 * the parts that must not change: version, originatorInfo, and everything after
 * recipientInfos (the encrypted content, and for AuthEnvelopedData its attributes and
 * mac) are copied verbatim; recipientInfos becomes one KeyAgreeRecipientInfo per one
 * that named a list group, with E' = rk·E and rid = the remote certificate's, ukm,
 * keyEncryptionAlgorithm and encryptedKey byte-identical (docs/design.md §2). Every other
 * recipient info is dropped, so the remote member never sees the group's (or anyone
 * else's) identifiers. The result is a complete S/MIME message for SMTP.
 *
 * Whole-message and pure: the caller has the stored message in memory; the output is
 * written into one buffer. Anything that cannot be recrypted throws a RecryptError and
 * produces nothing.
 */
import { Base64LineWriter, base64LinesLength } from './base64-lines.js';
import { recipientIdOf } from './certificates.js';
import {
  TAG,
  berChildren,
  berEnd,
  encodeTlv,
  encodeTreeAround,
  readChildren,
  readTlv,
  tlvBytes,
} from './der.js';
import { certificateDer, readRecipientCertificate } from './envelope.js';
import { RecryptError } from './errors.js';
import { checkScalar, recryptPoint, validatePoint } from './scalar.js';
import { smimeBodyFields, withCrlf } from './smime.js';
import {
  MAX_HEADER_BYTES,
  findHeaderEnd,
  locateSmimeBody,
  parseHeaderFields,
} from './transform-message.js';
import {
  parseEnvelopePrefix,
  toHex,
  type EnvelopePrefix,
  type KariInfo,
  type KariRecipient,
} from './transform-prefix.js';
import type { RecipientId, Scalar } from './types.js';

/** Stored header fields that describe the stored body; the output announces its own. */
const REPLACED_FIELDS = new Set([
  'content-type',
  'content-transfer-encoding',
  'content-disposition',
  'content-description',
]);

function malformed(message: string): never {
  throw new RecryptError('malformed-der', message);
}

/**
 * The IssuerAndSerialNumber (DER) of any X.509 certificate, DER or PEM: how a
 * KeyAgreeRecipientInfo names its holder. Any issuer DN and serial length.
 */
export function remoteRecipientId(certificate: Uint8Array): RecipientId {
  return recipientIdOf(certificateDer(certificate));
}

/**
 * A copy of the stored S/MIME message `stored` that the holder of `certificate` decrypts
 * with their own key. `groupIds` maps list group RecipientIds (lowercase hex) to
 * rk = g_list·d⁻¹ for that group (current and former groups of the list).
 *
 * Throws RecryptError: 'no-recipient' when no KeyAgreeRecipientInfo names one of the
 * groups; 'invalid-point' / 'unsupported' for an originator key that must not or cannot
 * be multiplied; 'unsupported' for a message that is not an S/MIME envelope or a
 * certificate that is not EC P-256; 'malformed-der' for a broken one.
 */
export function recryptForCertificate(
  stored: Uint8Array,
  groupIds: ReadonlyMap<string, Scalar>,
  certificate: Uint8Array,
): Uint8Array {
  if (!(stored instanceof Uint8Array))
    throw new RecryptError('invalid-argument', 'stored must be a Uint8Array');
  checkGroupIds(groupIds);
  const { recipientId } = readRecipientCertificate(certificate);

  const body = locateSmimeBody(stored);
  if (body.kind !== 'body') {
    const why = body.kind === 'unchanged' ? body.reason : 'header block without an end';
    throw new RecryptError('unsupported', `not an S/MIME enveloped message (${why})`);
  }
  const der =
    body.encoding === 'base64'
      ? decodeBase64Body(stored, body.bodyStart)
      : stored.subarray(body.bodyStart);
  const envelope = readEnvelope(der, body.encoding === 'binary');

  const targets = findTargets(envelope.prefix, groupIds);
  if (targets.length === 0) {
    throw new RecryptError('no-recipient', 'no KeyAgreeRecipientInfo names one of the groups');
  }
  // Every point is checked before any is multiplied: one bad point, no output at all.
  for (const target of targets) checkOriginator(target.kari);
  const recipientInfos = targets.map((target) => recryptedKari(der, target, recipientId));

  const { head, tail } = encodeTreeAround({
    tag: TAG.SEQUENCE,
    children: [
      envelope.contentType,
      {
        tag: TAG.context(0),
        children: [
          {
            tag: TAG.SEQUENCE,
            children: [
              envelope.lead,
              { tag: TAG.SET, children: recipientInfos },
              { hole: envelope.rest.length },
            ],
          },
        ],
      },
    ],
  });
  const header = outerHeader(stored, envelope.prefix.kind === 'authEnveloped');
  const derLength = head.length + envelope.rest.length + tail.length;
  const out = new Uint8Array(header.length + base64LinesLength(derLength));
  out.set(header, 0);
  const lines = new Base64LineWriter(out, header.length);
  lines.write(head);
  lines.write(envelope.rest);
  lines.write(tail);
  lines.end();
  return out;
}

function checkGroupIds(groupIds: ReadonlyMap<string, Scalar>): void {
  if (!(groupIds instanceof Map) || groupIds.size === 0) {
    throw new RecryptError('invalid-argument', 'groupIds must be a non-empty Map');
  }
  for (const [id, rk] of groupIds) {
    if (typeof id !== 'string' || !/^(?:[0-9a-f]{2})+$/.test(id)) {
      throw new RecryptError('invalid-argument', 'groupIds must be keyed by lowercase hex ids');
    }
    checkScalar(rk, 'recryption key');
  }
}

const FOREIGN = /[^A-Za-z0-9+/=\r\n\t ]/;
const NOT_PADDING = /[^=\r\n\t ]/;

function countByte(bytes: Buffer, byte: number): number {
  let count = 0;
  for (let at = bytes.indexOf(byte); at !== -1; at = bytes.indexOf(byte, at + 1)) count++;
  return count;
}

/**
 * The DER of a base64 body with any line lengths. Checked strictly first: Node's
 * decoder would skip foreign characters and accept the URL-safe alphabet, turning a
 * damaged body into different bytes instead of an error. The checks are native scans
 * (regex, indexOf): a byte loop in JavaScript cost more than the content encryption of
 * a 5 MB post.
 */
function decodeBase64Body(text: Uint8Array, start: number): Uint8Array {
  const view = Buffer.from(text.buffer, text.byteOffset + start, text.length - start);
  const body = view.toString('latin1');
  if (FOREIGN.test(body)) malformed('base64 body: a character outside the alphabet');
  const firstPad = body.indexOf('=');
  const padding = firstPad === -1 ? 0 : countByte(view, 0x3d);
  if (padding > 2 || (firstPad !== -1 && NOT_PADDING.test(body.slice(firstPad)))) {
    malformed('base64 body: data after the padding');
  }
  const chars =
    view.length -
    padding -
    [0x0a, 0x0d, 0x20, 0x09].reduce((sum, byte) => sum + countByte(view, byte), 0);
  if (chars % 4 === 1 || (padding > 0 && (chars + padding) % 4 !== 0)) {
    malformed('base64 body: incomplete final group');
  }
  return Buffer.from(body, 'base64');
}

interface EnvelopeParts {
  prefix: EnvelopePrefix;
  /** The ContentInfo's contentType OID element. */
  contentType: Uint8Array;
  /** version and originatorInfo, verbatim (everything before recipientInfos). */
  lead: Uint8Array;
  /** Everything after recipientInfos up to the envelope's end, verbatim. */
  rest: Uint8Array;
}

/**
 * Splits a ContentInfo holding (Auth)EnvelopedData into the parts the rebuild keeps.
 * BER indefinite lengths (streaming encoders) are read; the rebuilt wrappers are
 * definite, and what lies inside `rest` is copied as it is.
 */
function readEnvelope(der: Uint8Array, binary: boolean): EnvelopeParts {
  const prefix = parseEnvelopePrefix(der, Infinity);
  const contentInfo = readTlv(der, 0, { allowIndefinite: true });
  const [contentType, explicit, extra] = berChildren(der, contentInfo);
  if (contentType === undefined || explicit === undefined || extra !== undefined) {
    malformed('ContentInfo must hold a content type and one [0] content');
  }
  if (berChildren(der, explicit).length !== 1) {
    malformed('ContentInfo [0] must hold exactly the envelope');
  }
  const fields = berChildren(der, prefix.envelope);
  const after = fields.findIndex((field) => field.offset === prefix.recipientInfos.end);
  const last = fields[fields.length - 1]!;
  if (after === -1 || fields[after]!.tag !== TAG.SEQUENCE) {
    malformed('no encrypted content info after recipientInfos');
  }
  const end = berEnd(der, contentInfo);
  if (end > der.length) malformed('the message ends inside the ContentInfo');
  // A binary body may end in the line break of the message's last line.
  for (let at = end; at < der.length; at++) {
    if (!binary || (der[at] !== 0x0d && der[at] !== 0x0a)) malformed('data after the ContentInfo');
  }
  return {
    prefix,
    contentType: tlvBytes(der, contentType),
    lead: der.subarray(prefix.envelope.contentOffset, prefix.recipientInfos.offset),
    rest: der.subarray(prefix.recipientInfos.end, berEnd(der, last)),
  };
}

interface Target {
  kari: KariInfo;
  recipient: KariRecipient;
  rk: Scalar;
}

/**
 * One target per RecipientEncryptedKey naming a group, in stored order: both wrap
 * encodings of docs/design.md §2 are kept, so whichever the remote's client reads is there.
 */
function findTargets(prefix: EnvelopePrefix, groupIds: ReadonlyMap<string, Scalar>): Target[] {
  const targets: Target[] = [];
  for (const kari of prefix.karis) {
    for (const recipient of kari.recipients) {
      if (!recipient.isIssuerAndSerial) continue;
      const rk = groupIds.get(toHex(recipient.rid));
      if (rk !== undefined) targets.push({ kari, recipient, rk });
    }
  }
  return targets;
}

/** Refuses any originator key that is not a validated, uncompressed P-256 point. */
function checkOriginator(kari: KariInfo): void {
  const point = kari.originatorPoint;
  const which = `recipient info ${kari.index + 1}`;
  if (point === null) {
    throw new RecryptError('unsupported', `${which}: originator is not an ephemeral public key`);
  }
  if (!kari.originatorOnP256) {
    throw new RecryptError('invalid-point', `${which}: originator key is not on P-256`);
  }
  if (point.bytes.length === 33) {
    throw new RecryptError('unsupported', `${which}: compressed originator point`);
  }
  if (!validatePoint(point.bytes)) {
    throw new RecryptError('invalid-point', `${which}: originator point is not on P-256`);
  }
}

/** The KeyAgreeRecipientInfo for the remote: new point and rid, every other byte kept. */
function recryptedKari(der: Uint8Array, target: Target, remoteId: RecipientId): Uint8Array {
  const { kari, recipient, rk } = target;
  const fields = readChildren(der, kari.tlv, 8);
  const version = fields[0]!;
  const originatorKey = readChildren(der, fields[1]!, 1)[0]!;
  const algorithm = readChildren(der, originatorKey, 2)[0]!;
  const encryptedKeys = fields[fields.length - 1]!;
  // ukm (if any) and keyEncryptionAlgorithm: they enter the KDF, so not a byte changes.
  const kdfInputs = der.subarray(fields[2]!.offset, encryptedKeys.offset);
  const encryptedKey = readTlv(der, recipient.ridOffset + recipient.rid.length, {
    requireContent: true,
  });
  const point = recryptPoint(kari.originatorPoint!.bytes, rk);
  return encodeTlv(
    TAG.context(1),
    tlvBytes(der, version),
    encodeTlv(
      TAG.context(0),
      encodeTlv(
        TAG.context(1),
        tlvBytes(der, algorithm),
        encodeTlv(TAG.BIT_STRING, Uint8Array.of(0), point),
      ),
    ),
    kdfInputs,
    encodeTlv(TAG.SEQUENCE, encodeTlv(TAG.SEQUENCE, remoteId, tlvBytes(der, encryptedKey))),
  );
}

/** The stored header block, CRLF, with fresh MIME fields for a base64 S/MIME body. */
function outerHeader(stored: Uint8Array, authenticated: boolean): Buffer {
  // locateSmimeBody found the end of the header already; this cannot be null.
  const bounds = findHeaderEnd(stored, MAX_HEADER_BYTES)!;
  const parts: Buffer[] = [];
  let mimeVersion = false;
  for (const field of parseHeaderFields(stored, bounds.headerEnd)) {
    if (REPLACED_FIELDS.has(field.name)) continue;
    if (field.name === 'mime-version') mimeVersion = true;
    parts.push(withCrlf(stored.subarray(field.start, field.end)));
  }
  const fresh = (mimeVersion ? '' : 'MIME-Version: 1.0\r\n') + smimeBodyFields(authenticated);
  parts.push(Buffer.from(fresh + '\r\n', 'latin1'));
  return Buffer.concat(parts);
}
