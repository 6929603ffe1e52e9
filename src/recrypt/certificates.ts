/**
 * The project's certificates (docs/design.md §2): one self-signed owner CA per owner, and the
 * group and device certificates it issues. Everything here serves one constraint: the
 * recrypt transform swaps a group's IssuerAndSerialNumber for a device's in place, so
 * that structure must have the same length for every certificate any owner CA issues.
 * Hence the CA's DN is exactly `CN=<keyFingerprint(CA key)>` (fixed length) and serials
 * are 16 random bytes whose first byte is in [0x01, 0x7f] (a 16-byte DER INTEGER).
 *
 * Validity (callers pass the clock): notBefore is `now` minus one hour so that a client
 * whose clock lags a little still accepts a fresh certificate; the owner CA lasts 20 years
 * (it anchors every device of the owner), group and device certificates 5 years, never
 * beyond their CA.
 */
// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import { createHash, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import * as asn1js from 'asn1js';
import { RecryptError } from './errors.js';
import { checkScalar, privateJwk, publicPoint, randomScalar, validatePoint } from './scalar.js';
import type { RecipientId, Scalar } from './types.js';
import { keyFingerprint } from './udf.js';

export const CA_YEARS = 20;
export const LEAF_YEARS = 5;
const CLOCK_SKEW_MS = 60 * 60 * 1000;
const SERIAL_LENGTH = 16;

/**
 * Length of `recipientIdOf` for every certificate an owner CA issues (and the CA itself):
 * SEQUENCE { Name (62: one RDN, CN as a 49-character PrintableString), INTEGER (18) }.
 */
export const RECIPIENT_ID_LENGTH = 82;

// The library is typed against the DOM's Crypto and CryptoKey, which this project (lib
// ES2023, no DOM) does not declare; name them through its own signatures instead.
type X509Crypto = NonNullable<Parameters<typeof x509.X509CertificateGenerator.create>[1]>;
const crypto = webcrypto as unknown as X509Crypto;
type SigningKey = Parameters<typeof x509.X509CertificateGenerator.create>[0] extends infer P
  ? P extends { signingKey: infer K }
    ? K
    : never
  : never;
const ECDSA_SHA256 = { name: 'ECDSA', hash: 'SHA-256' } as const;

/** DER prefix of a P-256 SubjectPublicKeyInfo (id-ecPublicKey, prime256v1) before the 65-byte point. */
const P256_SPKI_PREFIX = Uint8Array.from(
  Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex'),
);

/** The DER SubjectPublicKeyInfo of an uncompressed P-256 point. */
export function spkiOfPoint(point: Uint8Array): Uint8Array {
  if (!validatePoint(point)) {
    throw new RecryptError('invalid-point', 'publicKey is not an uncompressed P-256 point');
  }
  const out = new Uint8Array(P256_SPKI_PREFIX.length + point.length);
  out.set(P256_SPKI_PREFIX);
  out.set(point, P256_SPKI_PREFIX.length);
  return out;
}

export interface OwnerCa {
  /** DER of the self-signed CA certificate. */
  certificate: Uint8Array;
  /** The CA's signing key; the owner keeps it (the CLI), never the gateway. */
  secret: Scalar;
}

export interface IssueOptions {
  /** DER of the issuing owner CA certificate. */
  ca: Uint8Array;
  caSecret: Scalar;
  /** The subject's public point (65 bytes uncompressed): G = g·P or D = d·P. */
  publicKey: Uint8Array;
  /** The mailbox's or list's address, put in the rfc822Name SAN. */
  address: string;
  /** CN of the subject (default: the address for a group). */
  name?: string;
  now: Date;
  years?: number;
}

function assertDate(now: unknown): asserts now is Date {
  if (!(now instanceof Date) || Number.isNaN(now.getTime())) {
    throw new RecryptError('invalid-argument', 'now must be a valid Date');
  }
}

function assertYears(years: unknown): asserts years is number {
  if (typeof years !== 'number' || !Number.isInteger(years) || years < 1 || years > 100) {
    throw new RecryptError('invalid-argument', 'years must be an integer in [1, 100]');
  }
}

/** ASCII addr-spec only: rfc822Name is an IA5String (SmtpUTF8Mailbox is not supported). */
function assertAddress(address: unknown): asserts address is string {
  if (
    typeof address !== 'string' ||
    !/^[\x21-\x3f\x41-\x7e]+@[A-Za-z0-9.-]+$/.test(address) ||
    address.length > 254
  ) {
    throw new RecryptError(
      'invalid-argument',
      'address must be an ASCII mail address (local@domain)',
    );
  }
}

function assertName(name: unknown, what: string): asserts name is string {
  if (typeof name !== 'string' || name.length === 0 || name.length > 64) {
    throw new RecryptError('invalid-argument', `${what} must be a string of 1 to 64 characters`);
  }
}

function addYears(date: Date, years: number): Date {
  const out = new Date(date.getTime());
  out.setUTCFullYear(out.getUTCFullYear() + years);
  return out;
}

/** 16 random bytes, first byte in [0x01, 0x7f]: positive and exactly 16 DER content bytes. */
function randomSerialHex(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(SERIAL_LENGTH));
  bytes[0] = (bytes[0]! % 0x7f) + 1;
  return Buffer.from(bytes).toString('hex');
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits (20 bytes). */
function keyIdentifierHex(point: Uint8Array): string {
  return createHash('sha1').update(point).digest('hex');
}

async function importSigningKey(secret: Scalar): Promise<webcrypto.CryptoKey> {
  const jwk = privateJwk(secret) as webcrypto.JsonWebKey;
  return webcrypto.subtle.importKey('jwk', jwk, { name: 'ECDSA', namedCurve: 'P-256' }, false, [
    'sign',
  ]);
}

/** A new owner CA: self-signed, `CN=<UDF fingerprint of its key>`, ECDSA P-256 / SHA-256. */
export async function issueOwnerCa(options: {
  now: Date;
  /** Reuse an existing CA key (e.g. to re-issue); default a fresh random one. */
  secret?: Scalar;
  years?: number;
}): Promise<OwnerCa> {
  const { now, years = CA_YEARS } = options;
  assertDate(now);
  assertYears(years);
  const secret =
    options.secret === undefined ? randomScalar() : checkScalar(options.secret, 'secret');
  const point = publicPoint(secret);
  const spki = spkiOfPoint(point);
  const name: x509.JsonName = [{ CN: [keyFingerprint(spki)] }];
  const keyId = keyIdentifierHex(point);
  const certificate = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomSerialHex(),
      subject: name,
      issuer: name,
      notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
      notAfter: addYears(now, years),
      publicKey: spki,
      signingKey: (await importSigningKey(secret)) as unknown as SigningKey,
      signingAlgorithm: ECDSA_SHA256,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
          true,
        ),
        // RFC 5280 §4.2.1.2: the key every issued AuthorityKeyIdentifier names; gpgsm and
        // `openssl verify -x509_strict` find the issuer through it.
        new x509.SubjectKeyIdentifierExtension(keyId),
      ],
    },
    crypto,
  );
  return { certificate: new Uint8Array(certificate.rawData), secret };
}

function parseCertificate(der: unknown, what: string): x509.X509Certificate {
  if (!(der instanceof Uint8Array)) {
    throw new RecryptError('invalid-argument', `${what} must be a Uint8Array (DER)`);
  }
  try {
    return new x509.X509Certificate(der);
  } catch {
    throw new RecryptError('malformed-der', `${what} is not a DER X.509 certificate`);
  }
}

async function issueLeaf(options: IssueOptions, subjectName: string): Promise<Uint8Array> {
  const { now, years = LEAF_YEARS } = options;
  assertDate(now);
  assertYears(years);
  assertAddress(options.address);
  const caSecret = checkScalar(options.caSecret, 'caSecret');
  const ca = parseCertificate(options.ca, 'ca');
  const caPoint = publicPoint(caSecret);
  const caSpki = spkiOfPoint(caPoint);
  if (!Buffer.from(ca.publicKey.rawData).equals(Buffer.from(caSpki))) {
    throw new RecryptError('invalid-argument', 'caSecret does not belong to the ca certificate');
  }
  const spki = spkiOfPoint(options.publicKey);
  const notAfter = addYears(now, years);
  const certificate = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomSerialHex(),
      subject: [{ CN: [subjectName] }],
      // The CA's subject as it is encoded in the CA certificate, so issuer bytes match.
      issuer: new x509.Name(ca.subjectName.toArrayBuffer()),
      notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
      notAfter: notAfter > ca.notAfter ? ca.notAfter : notAfter,
      publicKey: spki,
      signingKey: (await importSigningKey(caSecret)) as unknown as SigningKey,
      signingAlgorithm: ECDSA_SHA256,
      extensions: [
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyAgreement, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.emailProtection], false),
        new x509.SubjectAlternativeNameExtension(
          [{ type: 'email', value: options.address }],
          false,
        ),
        new x509.SubjectKeyIdentifierExtension(keyIdentifierHex(options.publicKey)),
        new x509.AuthorityKeyIdentifierExtension(keyIdentifierHex(caPoint)),
      ],
    },
    crypto,
  );
  return new Uint8Array(certificate.rawData);
}

/** A group certificate (G = g·P) for a mailbox or list address, issued by its owner CA. */
export async function issueGroupCertificate(options: IssueOptions): Promise<Uint8Array> {
  const name = options.name ?? options.address;
  assertName(name, 'name');
  return issueLeaf(options, name);
}

/** A device certificate (D = d·P): SAN is the owner's address, CN names the device. */
export async function issueDeviceCertificate(
  options: IssueOptions & { name: string },
): Promise<Uint8Array> {
  assertName(options.name, 'name');
  return issueLeaf(options, options.name);
}

/**
 * DER of the CMS IssuerAndSerialNumber naming `certDer`: SEQUENCE { issuer, serial },
 * both copied byte for byte from the certificate (never re-encoded).
 */
export function recipientIdOf(certDer: Uint8Array): RecipientId {
  if (!(certDer instanceof Uint8Array)) {
    throw new RecryptError('invalid-argument', 'certDer must be a Uint8Array (DER)');
  }
  const parsed = asn1js.fromBER(certDer);
  const certificate = parsed.result;
  const tbs =
    parsed.offset === certDer.length && certificate instanceof asn1js.Sequence
      ? certificate.valueBlock.value[0]
      : undefined;
  if (!(tbs instanceof asn1js.Sequence)) {
    throw new RecryptError('malformed-der', 'certDer is not a DER certificate');
  }
  const fields = tbs.valueBlock.value;
  const first = fields[0];
  const hasVersion =
    first !== undefined && first.idBlock.tagClass === 3 && first.idBlock.tagNumber === 0;
  const serial = fields[hasVersion ? 1 : 0];
  const issuer = fields[hasVersion ? 3 : 2];
  if (!(serial instanceof asn1js.Integer) || !(issuer instanceof asn1js.Sequence)) {
    throw new RecryptError('malformed-der', 'certDer has no issuer and serial number');
  }
  const body = Buffer.concat([issuer.valueBeforeDecodeView, serial.valueBeforeDecodeView]);
  return new Uint8Array(Buffer.concat([derHeader(0x30, body.length), body]));
}

function derHeader(tag: number, length: number): Uint8Array {
  if (length < 0x80) return Uint8Array.of(tag, length);
  const bytes: number[] = [];
  for (let n = length; n > 0; n >>= 8) bytes.unshift(n & 0xff);
  return Uint8Array.of(tag, 0x80 | bytes.length, ...bytes);
}

/** The subject public key of a project certificate as a 65-byte uncompressed P-256 point. */
export function certificatePublicPoint(certDer: Uint8Array): Uint8Array {
  const certificate = parseCertificate(certDer, 'certDer');
  const spki = new Uint8Array(certificate.publicKey.rawData);
  const prefix = spki.subarray(0, P256_SPKI_PREFIX.length);
  const point = spki.subarray(P256_SPKI_PREFIX.length);
  if (!Buffer.from(prefix).equals(Buffer.from(P256_SPKI_PREFIX)) || !validatePoint(point)) {
    throw new RecryptError('unsupported', 'certDer does not hold an uncompressed P-256 key');
  }
  return new Uint8Array(point);
}

/** The first CN of a certificate's subject (for nicknames), or undefined. */
export function subjectCommonName(certDer: Uint8Array): string | undefined {
  const certificate = parseCertificate(certDer, 'certDer');
  return certificate.subjectName.getField('CN')[0];
}

/** PEM text (64-character lines) of DER bytes. */
export function toPem(der: Uint8Array, label = 'CERTIFICATE'): string {
  const lines =
    Buffer.from(der)
      .toString('base64')
      .match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
