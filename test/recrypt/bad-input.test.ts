/**
 * Bad input never escapes as an exception and never hangs: the transform plans
 * 'unchanged' (with the reason) or 'need-more' and the conveniences return the input
 * byte-identical; decryption throws a typed RecryptError and agrees with openssl.
 * Then several thousand random mutations of a real envelope through planRecrypt.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { envelopeForGroup } from '../../src/recrypt/envelope.js';
import { wrapMessage } from '../../src/recrypt/smime.js';
import {
  applyEdits,
  planRecrypt,
  recryptBase64,
  recryptDer,
  recryptMessage,
  type RecryptForm,
} from '../../src/recrypt/transform.js';
import { decryptEnvelope, decryptMessage } from '../../src/recrypt/decrypt.js';
import { RecryptError } from '../../src/recrypt/errors.js';
import { makeOpensslPki, opensslDecrypt, type Party } from '../helpers/recrypt-openssl-pki.js';
import { badInputs, type BadInput } from '../helpers/recrypt-bad-inputs.js';
import { fixtureMessages } from '../helpers/recrypt-messages.js';
import { deviceKeys } from '../helpers/recrypt-keys.js';
import { tempDir } from '../helpers/tmp.js';

let dir: ReturnType<typeof tempDir>;
let group: Party;
let laptop: Party;
let der: Uint8Array;
let table: BadInput[];
const original = fixtureMessages().find((m) => m.name === 'plain.eml')!.bytes;
const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));

beforeAll(() => {
  dir = tempDir('recrypt-bad-');
  const pki = makeOpensslPki(dir.path);
  group = pki.issue('group');
  laptop = pki.issue('laptop');
  der = envelopeForGroup(original, group.certDer);
  table = badInputs(der);
});
afterAll(() => dir?.remove());

function base64Of(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(
    Buffer.from(
      (
        Buffer.from(bytes)
          .toString('base64')
          .match(/.{1,76}/g) ?? []
      ).join('\r\n') + '\r\n',
      'latin1',
    ),
  );
}

function asMessage(bytes: Uint8Array): Uint8Array {
  const head =
    'Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\nContent-Transfer-Encoding: base64\r\n\r\n';
  return new Uint8Array(Buffer.concat([Buffer.from(head, 'latin1'), base64Of(bytes)]));
}

describe('the bad-input table', () => {
  it('covers every case named in the issue', () => {
    expect(table.length).toBeGreaterThanOrEqual(20);
  });

  it('each case: the stated reason in every form, bytes unchanged, a typed decrypt error', () => {
    const keys = deviceKeys(group, laptop);
    for (const bad of table) {
      const derPlan = planRecrypt(bad.der, 'der', keys);
      if (bad.reason === 'truncated') {
        expect(derPlan.kind, bad.name).toBe('need-more');
        if (derPlan.kind === 'need-more')
          expect(derPlan.atLeast, bad.name).toBeGreaterThan(bad.der.length);
      } else {
        expect(derPlan, bad.name).toMatchObject({ kind: 'unchanged', reason: bad.reason });
      }
      expect(same(recryptDer(bad.der, keys), bad.der), bad.name).toBe(true);
      const text = base64Of(bad.der);
      expect(same(recryptBase64(text, keys), text), bad.name).toBe(true);
      const message = asMessage(bad.der);
      expect(same(recryptMessage(message, keys), message), bad.name).toBe(true);
      if (bad.der.length > 0) {
        expect(recryptMessage(message, keys).length).toBe(message.length);
        const plan = planRecrypt(message, 'message', keys);
        expect(plan.kind === 'unchanged' || plan.kind === 'need-more', bad.name).toBe(true);
      }
      let code: string | undefined;
      try {
        decryptEnvelope(bad.der, laptop);
      } catch (error) {
        expect(error, bad.name).toBeInstanceOf(RecryptError);
        code = (error as RecryptError).code;
      }
      expect(['decrypt-failed', 'malformed-der', 'unsupported'], bad.name).toContain(code);
    }
  });

  it('an invalid point in the recrypted recipient info leaves the other one alone too', () => {
    const offCurve = table.find((b) => b.name === 'originator point off the curve')!;
    for (const encoding of ['absent', 'null'] as const) {
      const plan = planRecrypt(offCurve.der, 'der', deviceKeys(group, laptop, encoding));
      // 'null' devices recrypt the intact second recipient info; 'absent' ones must not touch anything
      expect(plan.kind).toBe(encoding === 'absent' ? 'unchanged' : 'edits');
    }
  });

  it('decryptEnvelope agrees with openssl on every case (group key)', () => {
    for (const bad of table) {
      const oracle = opensslDecrypt(dir.path, bad.der, group, 'DER');
      let ours: Uint8Array | undefined;
      try {
        ours = decryptEnvelope(bad.der, group);
      } catch (error) {
        expect(error, bad.name).toBeInstanceOf(RecryptError);
      }
      expect(ours !== undefined, `${bad.name}: openssl ${oracle.ok ? 'decrypts' : 'fails'}`).toBe(
        oracle.ok,
      );
      if (ours !== undefined) expect(same(ours, oracle.output), bad.name).toBe(true);
    }
  });
});

describe('other bad input', () => {
  it('messages that are not S/MIME envelopes, or too large to read', () => {
    const keys = deviceKeys(group, laptop);
    const cases: Array<[string, Uint8Array, string]> = [
      ['plain text mail', original, 'not-smime'],
      [
        'signed-data',
        Buffer.from(
          'Content-Type: application/pkcs7-mime; smime-type=signed-data\r\nContent-Transfer-Encoding: base64\r\n\r\nMIIB\r\n',
        ),
        'not-smime',
      ],
      [
        'quoted-printable',
        Buffer.from(
          'Content-Type: application/pkcs7-mime\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nMIIB\r\n',
        ),
        'not-smime',
      ],
      [
        'not base64',
        Buffer.from(
          'Content-Type: application/pkcs7-mime\r\nContent-Transfer-Encoding: base64\r\n\r\n*** not base64 ***\r\n',
        ),
        'not-base64',
      ],
      [
        '300 KB header without an end',
        Buffer.alloc(300 * 1024, 'X-Long: yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\r\n'),
        'too-large',
      ],
    ];
    for (const [name, bytes, reason] of cases) {
      const input = new Uint8Array(bytes);
      expect(planRecrypt(input, 'message', keys), name).toMatchObject({
        kind: 'unchanged',
        reason,
      });
      expect(same(recryptMessage(input, keys), input), name).toBe(true);
    }
    expect(() => decryptMessage(original, laptop)).toThrow(RecryptError);
  });

  it('a huge declared length with little data asks for more or refuses, at once', () => {
    const keys = deviceKeys(group, laptop);
    const huge = Uint8Array.of(
      0x30,
      0x84,
      0x7f,
      0xff,
      0xff,
      0xff,
      0x06,
      0x09,
      0x2a,
      0x86,
      0x48,
      0x86,
      0xf7,
      0x0d,
      0x01,
      0x07,
      0x03,
      0xa0,
      0x84,
      0x7f,
      0xff,
      0xff,
      0x00,
      0x30,
      0x84,
      0x7f,
      0xff,
      0xfe,
      0x00,
      0x02,
      0x01,
      0x02,
      0x31,
      0x84,
      0x7f,
      0x00,
      0x00,
      0x00,
    );
    expect(planRecrypt(huge, 'der', keys)).toMatchObject({
      kind: 'unchanged',
      reason: 'too-large',
    });
    const truncatedOuter = huge.subarray(0, 29);
    const plan = planRecrypt(truncatedOuter, 'der', keys);
    expect(plan.kind).toBe('need-more');
  });

  it('a malformed keys argument is a programmer error and throws', () => {
    const keys = deviceKeys(group, laptop);
    const codeOf = (k: unknown): string | undefined => {
      try {
        planRecrypt(der, 'der', k as typeof keys);
        return undefined;
      } catch (error) {
        return error instanceof RecryptError ? error.code : 'untyped';
      }
    };
    expect(codeOf(null)).toBe('invalid-argument');
    expect(codeOf({ ...keys, deviceId: 'abc' })).toBe('invalid-argument');
    expect(codeOf({ ...keys, wrapEncoding: 'other' })).toBe('invalid-argument');
    expect(codeOf({ ...keys, keys: new Map([['ZZ', 1n]]) })).toBe('invalid-argument');
    expect(codeOf({ ...keys, keys: new Map([[[...keys.keys.keys()][0]!, 0n]]) })).toBe(
      'invalid-scalar',
    );
    expect(() => planRecrypt(der, 'pem' as RecryptForm, keys)).toThrow(RecryptError);
  });
});

describe('fuzz: random mutations of a real envelope', () => {
  const mutation = fc.oneof(
    fc.record({
      op: fc.constant('flip' as const),
      at: fc.nat(),
      value: fc.integer({ min: 0, max: 255 }),
    }),
    fc.record({
      op: fc.constant('insert' as const),
      at: fc.nat(),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
    }),
    fc.record({
      op: fc.constant('delete' as const),
      at: fc.nat(),
      count: fc.integer({ min: 1, max: 8 }),
    }),
    fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  );
  type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

  function mutate(input: Uint8Array, mutations: Mutation[]): Uint8Array {
    let out = new Uint8Array(input);
    for (const m of mutations) {
      // bias towards the prefix, where the parser looks
      const at = m.at % Math.max(1, Math.min(out.length, m.at % 3 === 0 ? out.length : 700));
      if (m.op === 'flip') out[at] = m.value;
      else if (m.op === 'insert')
        out = new Uint8Array(Buffer.concat([out.subarray(0, at), m.bytes, out.subarray(at)]));
      else if (m.op === 'delete')
        out = new Uint8Array(Buffer.concat([out.subarray(0, at), out.subarray(at + m.count)]));
      else out = out.subarray(0, at);
    }
    return out;
  }

  it.each(['der', 'message'] as const)(
    '%s form: planRecrypt never throws, edits keep the length, decryption throws only RecryptError',
    (form) => {
      const keys = deviceKeys(group, laptop);
      const base = form === 'der' ? der : wrapMessage(original, group.certPem);
      const kinds = new Set<string>();
      fc.assert(
        fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (mutations) => {
          const input = mutate(base, mutations);
          const plan = planRecrypt(input, form, keys);
          kinds.add(plan.kind);
          if (plan.kind === 'edits') {
            const out = applyEdits(new Uint8Array(input), 0, plan.edits);
            expect(out.length).toBe(input.length);
            for (const edit of plan.edits)
              expect(edit.offset + edit.bytes.length).toBeLessThanOrEqual(input.length);
          }
          if (plan.kind === 'need-more') expect(plan.atLeast).toBeGreaterThan(input.length);
          // decryption of the same bytes: a result or a typed error, nothing else
          try {
            if (form === 'der') decryptEnvelope(input, group);
            else decryptMessage(input, group);
          } catch (error) {
            expect(error).toBeInstanceOf(RecryptError);
          }
        }),
        { numRuns: form === 'der' ? 3000 : 1500 },
      );
      expect([...kinds].sort()).toEqual(['edits', 'need-more', 'unchanged']);
    },
  );
});
