/**
 * Verifies a CMS SignedData from received mail with pkijs (signature and messageDigest
 * over the signed attributes; no chain: the address binding, DMARC and the certificate
 * checks decide, docs/sending.md "Harvested certificates") and returns the certificate
 * that signed, with what its client announced it can decrypt (SMIMECapabilities, RFC
 * 8551 §2.5.2). Bounded: the caller caps the input's size; at most MAX_CERTIFICATES
 * certificates and MAX_SIGNERS signers are looked at.
 */
import { webcrypto } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import type { RsaKeyTransport } from '../submission/key-sources.js';

const OID_SIGNED_DATA = '1.2.840.113549.1.7.2';
const OID_SMIME_CAPABILITIES = '1.2.840.113549.1.9.15';
const OID_RSAES_OAEP = '1.2.840.113549.1.1.7';
const OID_SHA256 = '2.16.840.1.101.3.4.2.1';
const OID_SHA1 = '1.3.14.3.2.26';
const MAX_CERTIFICATES = 10;
const MAX_SIGNERS = 4;

type Crypto = ConstructorParameters<typeof pkijs.CryptoEngine>[0]['crypto'];
const engine = new pkijs.CryptoEngine({
  name: 'node-webcrypto',
  crypto: webcrypto as unknown as Crypto,
});

export interface VerifiedSigner {
  /** DER of the certificate whose key made a valid signature. */
  certificate: Uint8Array;
  /** The same, as pkijs parsed it (certificate-checks.ts reads it without parsing again). */
  parsed: pkijs.Certificate;
  /** The RSA key transport the signer's client announced (undefined: none announced). */
  rsaKeyTransport?: RsaKeyTransport;
}

/** The OIDs in an ASN.1 subtree, depth-bounded. */
function oidsIn(node: asn1js.AsnType, depth = 0): string[] {
  if (depth > 6) return [];
  if (node instanceof asn1js.ObjectIdentifier) return [node.valueBlock.toString()];
  const children = (node as { valueBlock?: { value?: unknown } }).valueBlock?.value;
  return Array.isArray(children)
    ? children.flatMap((child) => oidsIn(child as asn1js.AsnType, depth + 1))
    : [];
}

/**
 * RSAES-OAEP among the SMIMECapabilities: with SHA-256 when its parameters name it, with
 * SHA-1 (RFC 4055's default parameters) otherwise; PKCS#1 v1.5 when only rsaEncryption
 * or nothing is announced (undefined here).
 */
function announcedKeyTransport(signer: pkijs.SignerInfo): RsaKeyTransport | undefined {
  const attribute = signer.signedAttrs?.attributes.find((a) => a.type === OID_SMIME_CAPABILITIES);
  const capabilities = attribute?.values[0];
  if (!(capabilities instanceof asn1js.Sequence)) return undefined;
  for (const capability of capabilities.valueBlock.value.slice(0, 64)) {
    if (!(capability instanceof asn1js.Sequence)) continue;
    const [id, parameters] = capability.valueBlock.value;
    if (!(id instanceof asn1js.ObjectIdentifier) || id.valueBlock.toString() !== OID_RSAES_OAEP)
      continue;
    const hashes = parameters === undefined ? [] : oidsIn(parameters);
    if (hashes.includes(OID_SHA256)) return 'rsa-oaep-sha256';
    if (hashes.length === 0 || hashes.includes(OID_SHA1)) return 'rsa-oaep-sha1';
  }
  return undefined;
}

/** The verified signer, or the reason there is none. Never throws. */
export async function verifySignedData(
  cms: Uint8Array,
  detachedContent: Uint8Array | undefined,
): Promise<VerifiedSigner | { reason: string }> {
  let signed: pkijs.SignedData;
  try {
    const asn = asn1js.fromBER(
      cms.buffer.slice(cms.byteOffset, cms.byteOffset + cms.byteLength) as ArrayBuffer,
    );
    if (asn.offset === -1) return { reason: 'malformed CMS' };
    const info = new pkijs.ContentInfo({ schema: asn.result });
    if (info.contentType !== OID_SIGNED_DATA) return { reason: 'not CMS SignedData' };
    signed = new pkijs.SignedData({ schema: info.content });
  } catch {
    return { reason: 'malformed CMS' };
  }
  const certificates = signed.certificates ?? [];
  if (certificates.length === 0) return { reason: 'no certificate in the signature' };
  if (certificates.length > MAX_CERTIFICATES || signed.signerInfos.length > MAX_SIGNERS)
    return { reason: 'too many certificates or signers' };
  if ((detachedContent === undefined) === (signed.encapContentInfo.eContent === undefined))
    return { reason: 'signed content missing' };
  for (let index = 0; index < signed.signerInfos.length; index++) {
    try {
      const result = await signed.verify(
        {
          signer: index,
          ...(detachedContent === undefined
            ? {}
            : {
                data: detachedContent.buffer.slice(
                  detachedContent.byteOffset,
                  detachedContent.byteOffset + detachedContent.byteLength,
                ) as ArrayBuffer,
              }),
          checkChain: false,
          extendedMode: true,
        },
        engine,
      );
      if (!result.signatureVerified || !result.signerCertificate) continue;
      const transport = announcedKeyTransport(signed.signerInfos[index]!);
      return {
        certificate: new Uint8Array(result.signerCertificate.toSchema().toBER(false)),
        parsed: result.signerCertificate,
        ...(transport === undefined ? {} : { rsaKeyTransport: transport }),
      };
    } catch {
      // pkijs throws for a signature that does not verify: try the next signer.
    }
  }
  return { reason: 'the signature does not verify' };
}
