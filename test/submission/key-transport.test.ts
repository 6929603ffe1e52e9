/**
 * RSA recipients in the one envelope (docs/sending.md "RSA recipients"): for each key
 * transport (PKCS#1 v1.5, RSAES-OAEP with SHA-1 defaults, RSAES-OAEP with SHA-256) the
 * real `openssl cms -decrypt` reads the message with the RSA recipient's key, and the
 * sender's group (a P-256 key agreement beside it) still reads it too; openssl's
 * `cms -cmsout -print` names the algorithm written.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  publicPoint,
  randomScalar,
  issueGroupCertificate,
  issueOwnerCa,
} from '../../src/recrypt/index.js';
import type { RsaKeyTransport } from '../../src/submission/key-sources.js';
import { envelopeFor } from '../../src/submission/send.js';
import type { Route } from '../../src/submission/routing.js';
import { requireBinary } from '../helpers/binaries.js';
import { makeSigner, type Signer } from '../helpers/keydir-signers.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir('recrypt-key-transport-');
let rsa: Signer;
let ec: Signer;
let senderCertificate: Uint8Array;

beforeAll(async () => {
  requireBinary('openssl');
  rsa = makeSigner(tmp.path, 'bob@c.test', { key: 'rsa' });
  ec = makeSigner(tmp.path, 'erin@c.test', { key: 'ec' });
  const now = new Date();
  const ca = await issueOwnerCa({ now });
  senderCertificate = await issueGroupCertificate({
    ca: ca.certificate,
    caSecret: ca.secret,
    publicKey: publicPoint(randomScalar()),
    address: 'alice@a.test',
    now,
  });
});

afterAll(() => tmp.remove());

function route(signer: Signer, transport?: RsaKeyTransport): Route {
  return {
    kind: 'remote-key',
    address: signer.address,
    certificate: signer.der,
    found: {
      kind: 'key',
      source: 'harvested',
      certificate: signer.der,
      provenance: 'test',
      validUntil: new Date(Date.now() + 86_400_000),
      requireEncryption: false,
      ...(transport === undefined ? {} : { rsaKeyTransport: transport }),
    },
  };
}

function openssl(args: string[], input: Uint8Array): string {
  return execFileSync('openssl', args, { input, stdio: ['pipe', 'pipe', 'pipe'] }).toString(
    'latin1',
  );
}

describe('key transport for RSA recipients', () => {
  const cases: Array<[RsaKeyTransport, RegExp]> = [
    ['rsa-pkcs1', /algorithm: rsaEncryption/],
    ['rsa-oaep-sha1', /algorithm: rsaesOaep/],
    ['rsa-oaep-sha256', /algorithm: rsaesOaep[\s\S]*sha256/],
  ];
  for (const [transport, printed] of cases)
    it(`${transport}: openssl decrypts with the RSA key, and the EC recipient too`, () => {
      const marker = `KT-${transport}-marker`;
      const message = Buffer.from(
        `From: alice@a.test\r\nTo: bob@c.test\r\nSubject: kt\r\n\r\n${marker}\r\n`,
      );
      const smime = envelopeFor(
        {
          message,
          clientEncrypted: false,
          senderCertificate,
          routes: [route(rsa, transport), route(ec)],
        },
        false,
      );
      expect(Buffer.from(smime).includes(marker)).toBe(false);
      const decrypt = (signer: Signer) =>
        openssl(['cms', '-decrypt', '-recip', signer.certFile, '-inkey', signer.keyFile], smime);
      expect(decrypt(rsa)).toContain(marker);
      expect(decrypt(ec)).toContain(marker);
      const file = join(tmp.path, `${transport}.eml`);
      writeFileSync(file, smime);
      const structure = execFileSync('openssl', ['cms', '-cmsout', '-print', '-in', file], {
        stdio: ['pipe', 'pipe', 'pipe'],
      }).toString('latin1');
      expect(structure).toMatch(printed);
      // Another RSA key reads nothing.
      const stranger = makeSigner(tmp.path, 'bob@c.test', { key: 'rsa' });
      expect(() => decrypt(stranger)).toThrow();
    });
});
