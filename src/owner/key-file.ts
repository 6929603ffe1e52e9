/**
 * The owner key file: the ONLY place the owner CA secret and the group secret `g` exist.
 * JSON, encrypted with a passphrase (scrypt → AES-256-GCM). The address, the gateway and
 * the gateway's TLS trust anchor stay readable without the passphrase (so that `profile
 * show` needs none) but are bound to the ciphertext as GCM additional data, so changing
 * them, like changing any other byte, makes the file fail to open.
 *
 * {
 *   "format": "recrypt-owner-key", "version": 1,
 *   "address": "...", "gateway": "https://host:port", "gatewayCa": "PEM" | null,
 *   "kdf": { "name": "scrypt", "logN": 17, "r": 8, "p": 1 },
 *   "cipher": "aes-256-gcm", "salt": b64, "iv": b64, "tag": b64, "ciphertext": b64
 * }
 * ciphertext = AES-256-GCM(JSON of OwnerSecrets) under scrypt(passphrase, salt).
 * After a rotation (`owner rotate`) the secrets also hold every former group, oldest
 * first (`formerGroups`): old mail stays readable, and a device added later is keyed
 * for the old groups too.
 */
import { createCipheriv, createDecipheriv, randomBytes, scrypt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import type { Scalar } from '../recrypt/index.js';
import { OwnerError } from './errors.js';

export const KEY_FILE_FORMAT = 'recrypt-owner-key' as const;
// 2^17 × 8 × 128 B = 128 MiB, ~0.3 s: the passphrase is human-chosen, so make guessing dear.
const DEFAULT_KDF = { name: 'scrypt' as const, logN: 17, r: 8, p: 1 };
// Each former group adds about 1.3 KiB (its secret and certificate, encrypted, base64).
const MAX_KEY_FILE_BYTES = 512 * 1024;
const MAX_FORMER_GROUPS = 256;

export interface OwnerPublicInfo {
  address: string;
  /** Origin of the gateway's admin API, e.g. https://gw.example.org:8443. */
  gateway: string;
  /** PEM the gateway's TLS certificate chains to, when it is not publicly trusted. */
  gatewayCa: string | null;
}

/** A group the mailbox had before its current one (replaced by `owner rotate`). */
export interface FormerGroup {
  groupSecret: Scalar;
  groupCertificate: Uint8Array;
}

export interface OwnerSecrets {
  ownerCaSecret: Scalar;
  groupSecret: Scalar;
  ownerCaCertificate: Uint8Array;
  groupCertificate: Uint8Array;
  /** Oldest first; absent or empty before the first rotation. */
  formerGroups?: FormerGroup[];
}

export interface OwnerKey extends OwnerPublicInfo, OwnerSecrets {}

const b64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/);
const fileSchema = z.strictObject({
  format: z.literal(KEY_FILE_FORMAT),
  version: z.literal(1),
  address: z.string().min(3).max(254),
  gateway: z.string().url().max(2048),
  gatewayCa: z
    .string()
    .max(32 * 1024)
    .nullable(),
  kdf: z.strictObject({
    name: z.literal('scrypt'),
    // Bounded so that a crafted file cannot make opening it take minutes or gigabytes.
    logN: z.number().int().min(14).max(20),
    r: z.number().int().min(1).max(16),
    p: z.number().int().min(1).max(4),
  }),
  cipher: z.literal('aes-256-gcm'),
  salt: b64,
  iv: b64,
  tag: b64,
  ciphertext: b64,
});
type KeyFileJson = z.infer<typeof fileSchema>;

const scalarHex = z.string().regex(/^[0-9a-f]{64}$/);
const secretsSchema = z.strictObject({
  ownerCaSecret: scalarHex,
  groupSecret: scalarHex,
  ownerCaCertificate: b64,
  groupCertificate: b64,
  formerGroups: z
    .array(z.strictObject({ groupSecret: scalarHex, groupCertificate: b64 }))
    .max(MAX_FORMER_GROUPS)
    .optional(),
});

function deriveKey(passphrase: string, salt: Buffer, kdf: KeyFileJson['kdf']): Promise<Buffer> {
  const N = 2 ** kdf.logN;
  return new Promise((resolve, reject) => {
    scrypt(
      passphrase,
      salt,
      32,
      { N, r: kdf.r, p: kdf.p, maxmem: 256 * N * kdf.r + 1024 * 1024 },
      (err, key) => (err ? reject(err) : resolve(key)),
    );
  });
}

/** The bytes GCM authenticates besides the ciphertext: every readable field of the file. */
function additionalData(file: Omit<KeyFileJson, 'iv' | 'tag' | 'ciphertext'>): Buffer {
  return Buffer.from(
    JSON.stringify([
      file.format,
      file.version,
      file.address,
      file.gateway,
      file.gatewayCa,
      file.kdf,
      file.cipher,
      file.salt,
    ]),
    'utf8',
  );
}

function checkPassphrase(passphrase: string): void {
  if (typeof passphrase !== 'string' || passphrase.length === 0) {
    throw new OwnerError('no-secret', 'the passphrase is empty');
  }
}

/** The key file's text (JSON) for `key`, encrypted under `passphrase`. */
export async function encodeOwnerKeyFile(key: OwnerKey, passphrase: string): Promise<string> {
  checkPassphrase(passphrase);
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const head = {
    format: KEY_FILE_FORMAT,
    version: 1 as const,
    address: key.address,
    gateway: key.gateway,
    gatewayCa: key.gatewayCa,
    kdf: DEFAULT_KDF,
    cipher: 'aes-256-gcm' as const,
    salt: salt.toString('base64'),
  };
  const secrets = {
    ownerCaSecret: key.ownerCaSecret.toString(16).padStart(64, '0'),
    groupSecret: key.groupSecret.toString(16).padStart(64, '0'),
    ownerCaCertificate: Buffer.from(key.ownerCaCertificate).toString('base64'),
    groupCertificate: Buffer.from(key.groupCertificate).toString('base64'),
    ...((key.formerGroups ?? []).length > 0
      ? {
          formerGroups: key.formerGroups!.map((g) => ({
            groupSecret: g.groupSecret.toString(16).padStart(64, '0'),
            groupCertificate: Buffer.from(g.groupCertificate).toString('base64'),
          })),
        }
      : {}),
  };
  const cipher = createCipheriv('aes-256-gcm', await deriveKey(passphrase, salt, DEFAULT_KDF), iv);
  cipher.setAAD(additionalData(head));
  const ciphertext = Buffer.concat([
    cipher.update(JSON.stringify(secrets), 'utf8'),
    cipher.final(),
  ]);
  const file: KeyFileJson = {
    ...head,
    iv: iv.toString('base64'),
    tag: cipher.getAuthTag().toString('base64'),
    ciphertext: ciphertext.toString('base64'),
  };
  return `${JSON.stringify(file, null, 2)}\n`;
}

function parseFile(text: string, path: string): KeyFileJson {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new OwnerError('corrupt-key-file', `${path} is not an owner key file (not JSON)`);
  }
  const parsed = fileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where =
      issue === undefined ? '' : `: ${issue.path.join('.') || '(top level)'}: ${issue.message}`;
    throw new OwnerError('corrupt-key-file', `${path} is not a valid owner key file${where}`);
  }
  return parsed.data;
}

function readText(path: string): string {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new OwnerError(
        'key-file-missing',
        `no owner key file at ${path} (run \`recrypt owner init\` first, or pass --key-file)`,
      );
    }
    throw new OwnerError('io', `cannot read ${path}: ${code ?? String(error)}`);
  }
  if (bytes.length > MAX_KEY_FILE_BYTES)
    throw new OwnerError('corrupt-key-file', `${path} is too large to be an owner key file`);
  return bytes.toString('utf8');
}

/** The readable part of a key file (no passphrase needed). */
export function readOwnerPublicInfo(path: string): OwnerPublicInfo {
  const file = parseFile(readText(path), path);
  return { address: file.address, gateway: file.gateway, gatewayCa: file.gatewayCa };
}

export async function decodeOwnerKeyFile(
  text: string,
  passphrase: string,
  path = 'the key file',
): Promise<OwnerKey> {
  checkPassphrase(passphrase);
  const file = parseFile(text, path);
  const iv = Buffer.from(file.iv, 'base64');
  const tag = Buffer.from(file.tag, 'base64');
  if (iv.length !== 12 || tag.length !== 16)
    throw new OwnerError('corrupt-key-file', `${path}: iv or tag has the wrong length`);
  const key = await deriveKey(passphrase, Buffer.from(file.salt, 'base64'), file.kdf);
  const decipher = createDecipheriv('aes-256-gcm', key, iv);
  decipher.setAAD(additionalData(file));
  decipher.setAuthTag(tag);
  let plain: Buffer;
  try {
    plain = Buffer.concat([
      decipher.update(Buffer.from(file.ciphertext, 'base64')),
      decipher.final(),
    ]);
  } catch {
    // GCM cannot tell a wrong passphrase from altered bytes; both mean "do not trust it".
    throw new OwnerError(
      'bad-passphrase',
      `wrong passphrase for ${path} (or the file was altered)`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(plain.toString('utf8'));
  } catch {
    json = undefined;
  }
  const secrets = secretsSchema.safeParse(json);
  if (!secrets.success)
    throw new OwnerError('corrupt-key-file', `${path}: its encrypted content is not owner secrets`);
  return {
    address: file.address,
    gateway: file.gateway,
    gatewayCa: file.gatewayCa,
    ownerCaSecret: BigInt(`0x${secrets.data.ownerCaSecret}`),
    groupSecret: BigInt(`0x${secrets.data.groupSecret}`),
    ownerCaCertificate: new Uint8Array(Buffer.from(secrets.data.ownerCaCertificate, 'base64')),
    groupCertificate: new Uint8Array(Buffer.from(secrets.data.groupCertificate, 'base64')),
    ...(secrets.data.formerGroups !== undefined && secrets.data.formerGroups.length > 0
      ? {
          formerGroups: secrets.data.formerGroups.map((g) => ({
            groupSecret: BigInt(`0x${g.groupSecret}`),
            groupCertificate: new Uint8Array(Buffer.from(g.groupCertificate, 'base64')),
          })),
        }
      : {}),
  };
}

export async function readOwnerKeyFile(path: string, passphrase: string): Promise<OwnerKey> {
  return decodeOwnerKeyFile(readText(path), passphrase, path);
}
