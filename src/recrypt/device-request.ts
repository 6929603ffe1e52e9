/**
 * The certificate request a pairing device sends (docs/cli.md "Pairing a device"): a
 * PKCS#10 request for D = d·P with the device's name as CN, signed with d. The
 * signature is the proof that whoever asks for a certificate on D holds d; the owner's
 * CLI and the gateway both check it before they use D.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { RecryptError } from './errors.js';
import { privateJwk, validatePoint } from './scalar.js';
import type { Scalar } from './types.js';

type X509Crypto = NonNullable<Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[1]>;
type KeyPair = Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[0]['keys'];
const crypto = webcrypto as unknown as X509Crypto;
const ECDSA_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;

/** DER prefix of a P-256 SubjectPublicKeyInfo before the 65-byte point. */
const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');
const MAX_REQUEST_BYTES = 4096;

export async function buildDeviceRequest(secret: Scalar, name: string): Promise<Uint8Array> {
  const jwk = privateJwk(secret) as webcrypto.JsonWebKey;
  const publicJwk = { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y };
  const keys = {
    privateKey: await webcrypto.subtle.importKey('jwk', jwk, ECDSA_P256, false, ['sign']),
    publicKey: await webcrypto.subtle.importKey('jwk', publicJwk, ECDSA_P256, true, ['verify']),
  } as unknown as KeyPair;
  const request = await x509.Pkcs10CertificateRequestGenerator.create(
    { name: [{ CN: [name] }], keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } },
    crypto,
  );
  return new Uint8Array(request.rawData);
}

export interface DeviceRequest {
  /** D, the uncompressed P-256 point the request is for. */
  point: Uint8Array;
  /** The CN the device asked for (its name). */
  name: string;
}

/** The point and name of a request whose signature verifies; RecryptError otherwise. */
export async function readDeviceRequest(der: Uint8Array): Promise<DeviceRequest> {
  const bad = (why: string) => new RecryptError('invalid-argument', `certificate request: ${why}`);
  if (!(der instanceof Uint8Array) || der.length > MAX_REQUEST_BYTES) throw bad('too large');
  let request: x509.Pkcs10CertificateRequest;
  try {
    request = new x509.Pkcs10CertificateRequest(der);
  } catch {
    throw bad('not a DER PKCS#10 request');
  }
  const spki = Buffer.from(request.publicKey.rawData);
  const point = new Uint8Array(spki.subarray(P256_SPKI_PREFIX.length));
  if (
    spki.length !== P256_SPKI_PREFIX.length + 65 ||
    !spki.subarray(0, P256_SPKI_PREFIX.length).equals(P256_SPKI_PREFIX) ||
    !validatePoint(point)
  )
    throw bad('its key is not a P-256 point');
  let verified: boolean;
  try {
    verified = await request.verify(crypto);
  } catch {
    verified = false;
  }
  if (!verified) throw bad('its signature does not verify');
  const name = request.subjectName.getField('CN')[0];
  if (name === undefined || name.length === 0 || name.length > 64) throw bad('no device name');
  return { point, name };
}
