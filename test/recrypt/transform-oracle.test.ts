/**
 * The transform against the real oracle (docs/design.md §3, OpenSSL): `openssl cms -decrypt`
 * reads every stored message with the group key and every recrypted one with the device
 * key, byte-exact; the device key fails on un-recrypted mail and another device's key
 * fails on this device's. decryptMessage must agree with openssl on all of them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wrapMessage } from '../../src/recrypt/smime.js';
import { planRecrypt, recryptMessage } from '../../src/recrypt/transform.js';
import { parseEnvelopePrefix } from '../../src/recrypt/transform-prefix.js';
import { decryptMessage } from '../../src/recrypt/decrypt.js';
import { RecryptError } from '../../src/recrypt/errors.js';
import {
  makeOpensslPki,
  opensslDecrypt,
  type OpensslPki,
  type Party,
} from '../helpers/recrypt-openssl-pki.js';
import { allSampleMessages } from '../helpers/recrypt-messages.js';
import { deviceKeys, hex } from '../helpers/recrypt-keys.js';
import { tempDir } from '../helpers/tmp.js';

let dir: ReturnType<typeof tempDir>;
let pki: OpensslPki;
let group: Party;
let laptop: Party;
let phone: Party;

beforeAll(() => {
  dir = tempDir('recrypt-oracle-');
  pki = makeOpensslPki(dir.path);
  group = pki.issue('group');
  laptop = pki.issue('laptop');
  phone = pki.issue('phone');
});
afterAll(() => dir?.remove());

/** The DER inside an S/MIME message from wrapMessage (base64 body after the empty line). */
function derOf(smime: Uint8Array): Uint8Array {
  const text = Buffer.from(smime).toString('latin1');
  const body = text.slice(text.indexOf('\r\n\r\n') + 4);
  return new Uint8Array(Buffer.from(body, 'base64'));
}

function decryptError(run: () => unknown): string | undefined {
  try {
    run();
    return undefined;
  } catch (error) {
    return error instanceof RecryptError ? error.code : String(error);
  }
}

describe.each(allSampleMessages().map((m) => [m.name, m] as const))(
  'message %s',
  (_name, message) => {
    it('round-trips: group reads the stored form; laptop reads its recrypted form; nobody else does', () => {
      const stored = wrapMessage(message.bytes, group.certPem);
      const asGroup = opensslDecrypt(dir.path, stored, group);
      expect(asGroup.stderr).toBe('');
      expect(asGroup.output.equals(message.bytes)).toBe(true);
      expect(Buffer.from(decryptMessage(stored, group)).equals(message.bytes)).toBe(true);
      // the device cannot read the stored form
      expect(opensslDecrypt(dir.path, stored, laptop).ok).toBe(false);
      expect(decryptError(() => decryptMessage(stored, laptop))).toBe('decrypt-failed');

      const keys = deviceKeys(group, laptop, 'absent');
      const plan = planRecrypt(stored, 'message', keys);
      expect(plan.kind).toBe('edits');
      const recrypted = recryptMessage(stored, keys);
      expect(recrypted.length).toBe(stored.length);
      const asLaptop = opensslDecrypt(dir.path, recrypted, laptop);
      expect(asLaptop.stderr).toBe('');
      expect(asLaptop.output.equals(message.bytes)).toBe(true);
      expect(Buffer.from(decryptMessage(recrypted, laptop)).equals(message.bytes)).toBe(true);
      // another device's key fails on the laptop's copy
      expect(opensslDecrypt(dir.path, recrypted, phone).ok).toBe(false);
      expect(decryptError(() => decryptMessage(recrypted, phone))).toBe('decrypt-failed');

      // the recrypted recipient info names the laptop; the NULL one still names the group
      const karis = parseEnvelopePrefix(derOf(recrypted)).karis;
      expect(karis.map((k) => [k.wrapEncoding, hex(k.recipients[0]!.rid)])).toEqual([
        ['absent', hex(laptop.recipientId)],
        ['null', hex(group.recipientId)],
      ]);
      // only the originator point and the rid of the recrypted recipient info changed
      const storedDer = derOf(stored);
      const recryptedDer = derOf(recrypted);
      const target = parseEnvelopePrefix(storedDer).karis[0]!;
      const allowed = (i: number): boolean =>
        (i >= target.originatorPoint!.offset && i < target.originatorPoint!.offset + 65) ||
        (i >= target.recipients[0]!.ridOffset &&
          i < target.recipients[0]!.ridOffset + target.recipients[0]!.rid.length);
      const changed: number[] = [];
      for (let i = 0; i < storedDer.length; i++)
        if (storedDer[i] !== recryptedDer[i]) changed.push(i);
      expect(changed.length).toBeGreaterThan(60);
      expect(changed.filter((i) => !allowed(i))).toEqual([]);
      // and outside the body, not a byte changed
      const bodyStart = Buffer.from(stored).indexOf('\r\n\r\n') + 4;
      expect(
        Buffer.from(recrypted.subarray(0, bodyStart)).equals(
          Buffer.from(stored.subarray(0, bodyStart)),
        ),
      ).toBe(true);
    });
  },
);
