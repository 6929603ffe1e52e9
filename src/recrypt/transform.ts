/**
 * The length-preserving, in-place recrypt (docs/design.md §2) — the IMAP proxy's hot path.
 *
 * `planRecrypt` reads only the CMS prefix (through recipientInfos) of a DER envelope, a
 * base64 body, or a whole S/MIME message, and returns the byte edits that turn the
 * group's KeyAgreeRecipientInfo into the device's: originator point E → ±rk·E (recryptPoint), rid →
 * the device's IssuerAndSerialNumber. `applyEdits` patches any byte range with them, so
 * a proxy streaming a 10 MB literal in chunks touches only the first few hundred bytes.
 *
 * Bad input never throws: it plans 'unchanged' (with a reason) or 'need-more'. Only a
 * malformed `keys` argument — a programmer error — throws.
 */
import { RecryptError } from './errors.js';
import { DerTruncatedError } from './der.js';
import { decodeBase64Prefix, mapEditsToText, type Base64Prefix } from './transform-base64.js';
import { locateSmimeBody } from './transform-message.js';
import {
  MAX_CMS_PREFIX,
  parseEnvelopePrefix,
  toHex,
  type EnvelopePrefix,
  type KariInfo,
} from './transform-prefix.js';
import type { Edit, RecryptForm, RecryptPlan, UnchangedReason } from './transform-types.js';
import { checkScalar, recryptPoint, validatePoint } from './scalar.js';
import type { DeviceRecryptKeys } from './types.js';

export type { Edit, RecryptForm, RecryptPlan, UnchangedReason } from './transform-types.js';

/**
 * Where recrypted points computed earlier can be found (the gateway computes them at
 * delivery, docs/design.md §4): `known` returns ±rk·E for a validated point E if kept,
 * else undefined and the transform multiplies; `computed` hears every product it made.
 * Neither may throw. Points only: the transform still validates E and chooses targets.
 */
export interface PointSource {
  known(point: Uint8Array, rk: bigint): Uint8Array | undefined;
  computed?(point: Uint8Array, rk: bigint, recrypted: Uint8Array): void;
}

function recryptedPoint(point: Uint8Array, rk: bigint, points?: PointSource): Uint8Array {
  const known = points?.known(point, rk);
  if (known !== undefined) return known;
  const recrypted = recryptPoint(point, rk);
  points?.computed?.(point, rk, recrypted);
  return recrypted;
}

type DerPlan =
  | { kind: 'edits'; edits: Edit[]; recrypted: number }
  | { kind: 'unchanged'; reason: UnchangedReason; detail?: string }
  | { kind: 'truncated'; needed: number };

function unchanged(reason: UnchangedReason, detail?: string): RecryptPlan {
  return detail === undefined
    ? { kind: 'unchanged', reason }
    : { kind: 'unchanged', reason, detail };
}

/** Throws on a malformed keys argument (programmer error); cheap enough to run per plan. */
export function checkDeviceKeys(keys: DeviceRecryptKeys): void {
  if (keys === null || typeof keys !== 'object') {
    throw new RecryptError('invalid-argument', 'keys must be a DeviceRecryptKeys object');
  }
  if (!(keys.deviceId instanceof Uint8Array) || keys.deviceId.length === 0) {
    throw new RecryptError('invalid-argument', 'keys.deviceId must be a non-empty Uint8Array');
  }
  if (keys.wrapEncoding !== 'absent' && keys.wrapEncoding !== 'null') {
    throw new RecryptError('invalid-argument', "keys.wrapEncoding must be 'absent' or 'null'");
  }
  if (!(keys.keys instanceof Map))
    throw new RecryptError('invalid-argument', 'keys.keys must be a Map');
  for (const [id, rk] of keys.keys) {
    if (typeof id !== 'string' || !/^(?:[0-9a-f]{2})+$/.test(id)) {
      throw new RecryptError(
        'invalid-argument',
        'keys.keys must be keyed by lowercase hex RecipientIds',
      );
    }
    checkScalar(rk, 'recryption key');
  }
}

/**
 * Which recipient infos to recrypt, per group the device holds a key for: the ones in
 * the device's wrap encoding. If the group has no KeyAgreeRecipientInfo in that encoding
 * (an end-to-end sender wrote only one), the first one it has is recrypted anyway:
 * OpenSSL and NSS rebuild SharedInfo from the message, so they read either encoding, and
 * a client that cannot is no worse off than with no recryption at all.
 */
function chooseTargets(
  prefix: EnvelopePrefix,
  keys: DeviceRecryptKeys,
): Array<{ kari: KariInfo; ridOffset: number; rid: Uint8Array; rk: bigint }> {
  const byGroup = new Map<
    string,
    Array<{ kari: KariInfo; ridOffset: number; rid: Uint8Array; rk: bigint }>
  >();
  for (const kari of prefix.karis) {
    for (const recipient of kari.recipients) {
      // Keys are held per IssuerAndSerialNumber (the only form that keeps its length
      // when swapped for the device's); an rKeyId never names one of our groups.
      if (!recipient.isIssuerAndSerial) continue;
      const id = toHex(recipient.rid);
      const rk = keys.keys.get(id);
      if (rk === undefined) continue;
      const list = byGroup.get(id) ?? [];
      list.push({ kari, ridOffset: recipient.ridOffset, rid: recipient.rid, rk });
      byGroup.set(id, list);
    }
  }
  const chosen: Array<{ kari: KariInfo; ridOffset: number; rid: Uint8Array; rk: bigint }> = [];
  const used = new Set<KariInfo>();
  for (const candidates of byGroup.values()) {
    const preferred = candidates.filter((c) => c.kari.wrapEncoding === keys.wrapEncoding);
    for (const target of preferred.length > 0 ? preferred : candidates.slice(0, 1)) {
      // One originator point per KeyAgreeRecipientInfo: it can be multiplied once.
      if (used.has(target.kari)) continue;
      used.add(target.kari);
      chosen.push(target);
    }
  }
  return chosen;
}

/** Plans the edits for DER bytes; offsets are DER offsets. */
function planDer(der: Uint8Array, keys: DeviceRecryptKeys, points?: PointSource): DerPlan {
  let prefix: EnvelopePrefix;
  try {
    prefix = parseEnvelopePrefix(der);
  } catch (error) {
    if (error instanceof DerTruncatedError) {
      if (error.needed > MAX_CMS_PREFIX) return { kind: 'unchanged', reason: 'too-large' };
      return { kind: 'truncated', needed: error.needed };
    }
    if (error instanceof RecryptError) {
      const reason: UnchangedReason =
        error.code === 'unsupported'
          ? 'not-envelope'
          : error.code === 'too-large'
            ? 'too-large'
            : 'malformed';
      return { kind: 'unchanged', reason, detail: error.message };
    }
    throw error;
  }
  const targets = chooseTargets(prefix, keys);
  if (targets.length === 0) return { kind: 'unchanged', reason: 'no-key' };
  // Check every target before computing anything: one bad point leaves the whole message alone.
  for (const target of targets) {
    const point = target.kari.originatorPoint;
    if (point === null)
      return {
        kind: 'unchanged',
        reason: 'unsupported-point',
        detail: 'originator is not a public key',
      };
    if (!target.kari.originatorOnP256)
      return {
        kind: 'unchanged',
        reason: 'invalid-point',
        detail: 'originator key is not on P-256',
      };
    if (point.bytes.length !== 65 || point.bytes[0] !== 0x04) {
      const reason = point.bytes.length === 33 ? 'unsupported-point' : 'invalid-point';
      return {
        kind: 'unchanged',
        reason,
        detail: `originator point of ${point.bytes.length} bytes`,
      };
    }
    if (!validatePoint(point.bytes)) return { kind: 'unchanged', reason: 'invalid-point' };
    if (target.rid.length !== keys.deviceId.length)
      return { kind: 'unchanged', reason: 'id-length-mismatch' };
  }
  const edits: Edit[] = [];
  for (const target of targets) {
    const point = target.kari.originatorPoint!;
    edits.push({ offset: point.offset, bytes: recryptedPoint(point.bytes, target.rk, points) });
    edits.push({ offset: target.ridOffset, bytes: keys.deviceId });
  }
  edits.sort((a, b) => a.offset - b.offset);
  return { kind: 'edits', edits, recrypted: targets.length };
}

function fromDerPlan(plan: DerPlan, shift: number): RecryptPlan {
  if (plan.kind === 'truncated') return { kind: 'need-more', atLeast: shift + plan.needed };
  if (plan.kind === 'unchanged') return plan;
  if (shift === 0) return plan;
  return { ...plan, edits: plan.edits.map((e) => ({ offset: e.offset + shift, bytes: e.bytes })) };
}

/** Plans for base64 text starting at `start` of `text`; edit offsets are text offsets. */
function planBase64(
  text: Uint8Array,
  start: number,
  keys: DeviceRecryptKeys,
  points?: PointSource,
): RecryptPlan {
  let want = 1536;
  for (;;) {
    const decoded: Base64Prefix = decodeBase64Prefix(text, start, want);
    if (decoded.chars === 0 && decoded.ended) return unchanged('not-base64');
    const plan = planDer(decoded.der, keys, points);
    if (plan.kind === 'unchanged') return plan;
    if (plan.kind === 'edits') {
      const edits = mapEditsToText(decoded, plan.edits);
      if (edits !== null) return { kind: 'edits', edits, recrypted: plan.recrypted };
      // An edit's 3-byte group reaches past what was decoded: decode one more group.
      if (decoded.ended) return unchanged('truncated');
      if (decoded.textEnd >= text.length) return { kind: 'need-more', atLeast: text.length + 4 };
      want = decoded.der.length + 3;
      continue;
    }
    // truncated: decode more if the text holds more
    if (decoded.der.length >= plan.needed) return unchanged('malformed');
    if (decoded.ended) return unchanged(decoded.chars === 0 ? 'not-base64' : 'truncated');
    if (decoded.textEnd >= text.length) {
      const missing = plan.needed + 2 - decoded.der.length;
      return { kind: 'need-more', atLeast: text.length + Math.ceil(missing / 3) * 4 };
    }
    // +2 so the 3-byte group holding the last needed byte is complete; doubling keeps
    // the number of rounds logarithmic, the cap keeps the work bounded.
    want = Math.min(Math.max(plan.needed + 2, want * 2), MAX_CMS_PREFIX + 3);
  }
}

/** Plans for a whole RFC 5322 S/MIME message; edit offsets are message offsets. */
function planMessage(
  message: Uint8Array,
  keys: DeviceRecryptKeys,
  points?: PointSource,
): RecryptPlan {
  const body = locateSmimeBody(message);
  if (body.kind === 'need-more') return body;
  if (body.kind === 'unchanged') return body;
  if (body.encoding === 'base64') return planBase64(message, body.bodyStart, keys, points);
  return fromDerPlan(planDer(message.subarray(body.bodyStart), keys, points), body.bodyStart);
}

/**
 * Plans the recryption of `prefix`, the first bytes of an input of the given form.
 * Offsets in the edits are offsets in that input. 'need-more' asks for a longer prefix
 * (at least `atLeast` bytes from the start); a caller that already passed the whole
 * input treats it as 'unchanged' (truncated). `points`: products kept from earlier.
 */
export function planRecrypt(
  prefix: Uint8Array,
  form: RecryptForm,
  keys: DeviceRecryptKeys,
  points?: PointSource,
): RecryptPlan {
  checkDeviceKeys(keys);
  if (!(prefix instanceof Uint8Array))
    throw new RecryptError('invalid-argument', 'prefix must be a Uint8Array');
  switch (form) {
    case 'der':
      return fromDerPlan(planDer(prefix, keys, points), 0);
    case 'base64':
      return planBase64(prefix, 0, keys, points);
    case 'message':
      return planMessage(prefix, keys, points);
    default:
      throw new RecryptError('invalid-argument', `unknown form ${String(form)}`);
  }
}

/**
 * Patches `chunk`, which holds input bytes [chunkOffset, chunkOffset + chunk.length),
 * IN PLACE with the parts of `edits` that fall inside it, and returns it. Callers that
 * must keep the original pass a copy.
 */
export function applyEdits(
  chunk: Uint8Array,
  chunkOffset: number,
  edits: readonly Edit[],
): Uint8Array {
  const chunkEnd = chunkOffset + chunk.length;
  for (const edit of edits) {
    const from = Math.max(edit.offset, chunkOffset);
    const to = Math.min(edit.offset + edit.bytes.length, chunkEnd);
    if (from >= to) continue;
    chunk.set(edit.bytes.subarray(from - edit.offset, to - edit.offset), from - chunkOffset);
  }
  return chunk;
}

/** Plans on complete input: a 'need-more' means the input ends inside the prefix. */
function planComplete(bytes: Uint8Array, form: RecryptForm, keys: DeviceRecryptKeys): RecryptPlan {
  const plan = planRecrypt(bytes, form, keys);
  return plan.kind === 'need-more' ? unchanged('truncated') : plan;
}

function recryptWhole(bytes: Uint8Array, form: RecryptForm, keys: DeviceRecryptKeys): Uint8Array {
  const plan = planComplete(bytes, form, keys);
  const out = new Uint8Array(bytes);
  return plan.kind === 'edits' ? applyEdits(out, 0, plan.edits) : out;
}

/** A recrypted copy of a DER ContentInfo (the same length; byte-identical if not recryptable). */
export function recryptDer(der: Uint8Array, keys: DeviceRecryptKeys): Uint8Array {
  return recryptWhole(der, 'der', keys);
}

/** A recrypted copy of base64 text (any line length); same length. */
export function recryptBase64(text: Uint8Array, keys: DeviceRecryptKeys): Uint8Array {
  return recryptWhole(text, 'base64', keys);
}

/** A recrypted copy of a whole S/MIME message; same length. */
export function recryptMessage(message: Uint8Array, keys: DeviceRecryptKeys): Uint8Array {
  return recryptWhole(message, 'message', keys);
}

/**
 * A recrypted copy of bytes [offset, offset + range.length) of an input of the given
 * form. `prefix` (the input's first bytes) is needed only when the range does not start
 * at 0 and could overlap the CMS prefix; if neither holds enough of the prefix to decide,
 * the range comes back unchanged (use planRecrypt to tell the cases apart).
 */
export function recryptRange(
  range: Uint8Array,
  offset: number,
  form: RecryptForm,
  keys: DeviceRecryptKeys,
  prefix?: Uint8Array,
): Uint8Array {
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new RecryptError('invalid-argument', 'offset must be a non-negative integer');
  }
  let source = prefix;
  if (offset === 0 && (prefix === undefined || prefix.length < range.length)) source = range;
  const out = new Uint8Array(range);
  if (source === undefined) {
    checkDeviceKeys(keys);
    return out;
  }
  const plan = planRecrypt(source, form, keys);
  return plan.kind === 'edits' ? applyEdits(out, offset, plan.edits) : out;
}
