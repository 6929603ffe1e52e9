/**
 * Properties of the transform (fast-check): length is always preserved; recrypting in
 * chunks of any sizes, with the prefix supplied as a proxy would, equals recrypting the
 * whole; recrypting with composeKeys(a, b) equals recrypting with a, then b.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { envelopeForGroup } from '../../src/recrypt/envelope.js';
import { wrapMessage } from '../../src/recrypt/smime.js';
import {
  planRecrypt,
  recryptDer,
  recryptRange,
  type RecryptForm,
} from '../../src/recrypt/transform.js';
import { decryptEnvelope } from '../../src/recrypt/decrypt.js';
import {
  composeKeys,
  CURVE_ORDER,
  invertScalar,
  multiplyScalars,
  randomScalar,
} from '../../src/recrypt/scalar.js';
import type { DeviceRecryptKeys } from '../../src/recrypt/types.js';
import { makeOpensslPki, opensslDecrypt, type Party } from '../helpers/recrypt-openssl-pki.js';
import { fixtureMessages } from '../helpers/recrypt-messages.js';
import { deviceKeys, hex } from '../helpers/recrypt-keys.js';
import { tempDir } from '../helpers/tmp.js';

let dir: ReturnType<typeof tempDir>;
let group: Party;
let laptop: Party;
let tablet: Party;
const original = fixtureMessages().find((m) => m.name === 'multipart.eml')!.bytes;

beforeAll(() => {
  dir = tempDir('recrypt-props-');
  const pki = makeOpensslPki(dir.path);
  group = pki.issue('group');
  laptop = pki.issue('laptop');
  tablet = pki.issue('tablet');
});
afterAll(() => dir?.remove());

const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));

/** A prefix the plan accepts, found the way a proxy would: follow 'need-more' (reading ≥ 64 more bytes a round). */
function prefixLength(input: Uint8Array, form: RecryptForm, keys: DeviceRecryptKeys): number {
  let length = 1;
  for (let rounds = 0; rounds < 1000; rounds++) {
    const plan = planRecrypt(input.subarray(0, length), form, keys);
    if (plan.kind !== 'need-more') return length;
    expect(plan.atLeast).toBeGreaterThan(length);
    length = Math.min(Math.max(plan.atLeast, length + 64), input.length);
  }
  throw new Error('planRecrypt kept asking for more');
}

function chunked(
  input: Uint8Array,
  cuts: number[],
  form: RecryptForm,
  keys: DeviceRecryptKeys,
): Uint8Array {
  const prefix = input.subarray(0, prefixLength(input, form, keys));
  const bounds = [...new Set([0, ...cuts.map((c) => c % (input.length + 1)), input.length])].sort(
    (a, b) => a - b,
  );
  const parts: Uint8Array[] = [];
  for (let i = 0; i + 1 < bounds.length; i++) {
    parts.push(
      recryptRange(input.subarray(bounds[i]!, bounds[i + 1]!), bounds[i]!, form, keys, prefix),
    );
  }
  return new Uint8Array(Buffer.concat(parts));
}

describe('properties', () => {
  it('length is preserved and nothing throws, whatever the bytes', () => {
    const keys = deviceKeys(group, laptop);
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 2048 }),
        fc.constantFrom<RecryptForm>('der', 'base64', 'message'),
        (bytes, form) => {
          const out = recryptRange(bytes, 0, form, keys);
          expect(out.length).toBe(bytes.length);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('recrypting in chunks of any sizes equals recrypting whole (message, base64 and DER forms)', () => {
    const keys = deviceKeys(group, laptop);
    const message = wrapMessage(original, group.certPem);
    const text = message.subarray(Buffer.from(message).indexOf('\r\n\r\n') + 4);
    const der = envelopeForGroup(original, group.certDer);
    const inputs: Array<[RecryptForm, Uint8Array]> = [
      ['message', message],
      ['base64', text],
      ['der', der],
    ];
    const wholes = inputs.map(([form, input]) => recryptRange(input, 0, form, keys));
    inputs.forEach(([, input], i) => expect(same(wholes[i]!, input)).toBe(false));
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        (which, cuts) => {
          const [form, input] = inputs[which]!;
          expect(same(chunked(input, cuts, form, keys), wholes[which]!)).toBe(true);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('recrypting with composeKeys(a, b) equals recrypting with a, then b', () => {
    const stored = envelopeForGroup(original, group.certDer);
    const groupHex = hex(group.recipientId);
    const scalar = fc.bigInt({ min: 1n, max: CURVE_ORDER - 1n });
    fc.assert(
      fc.property(scalar, scalar, (a, b) => {
        const step1 = recryptDer(stored, {
          deviceId: laptop.recipientId,
          wrapEncoding: 'absent',
          keys: new Map([[groupHex, a]]),
        });
        const step2 = recryptDer(step1, {
          deviceId: tablet.recipientId,
          wrapEncoding: 'absent',
          keys: new Map([[hex(laptop.recipientId), b]]),
        });
        const once = recryptDer(stored, {
          deviceId: tablet.recipientId,
          wrapEncoding: 'absent',
          keys: new Map([[groupHex, composeKeys(a, b)]]),
        });
        expect(same(step2, once)).toBe(true);
      }),
      { numRuns: 40 },
    );
  });

  it('a list → member → device chain, composed, is read by the device (openssl)', () => {
    // list key → member group (secret m) → tablet: rk_list = g·m⁻¹, rk_dev = m·d⁻¹
    const member = randomScalar();
    const rkList = multiplyScalars(group.secret, invertScalar(member));
    const rkDevice = multiplyScalars(member, invertScalar(tablet.secret));
    const stored = envelopeForGroup(original, group.certDer);
    const keys: DeviceRecryptKeys = {
      deviceId: tablet.recipientId,
      wrapEncoding: 'absent',
      keys: new Map([[hex(group.recipientId), composeKeys(rkList, rkDevice)]]),
    };
    const recrypted = recryptDer(stored, keys);
    expect(same(opensslDecrypt(dir.path, recrypted, tablet, 'DER').output, original)).toBe(true);
    expect(same(decryptEnvelope(recrypted, tablet), original)).toBe(true);
  });
});
