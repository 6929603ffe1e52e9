/**
 * The list owner's list key file: every group secret of one list (current last; the old
 * ones still read old posts). Encrypted with AES-256-GCM under a key derived (HKDF) from
 * the owner's own group secret, so it is as safe as the owner key file that unlocks it
 * and needs no second passphrase. Written atomically: a rotation that fails half-way
 * leaves the previous file.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { readFileSync, renameSync } from 'node:fs';
import { scalarFromBytes, scalarToBytes } from '../recrypt/index.js';
import { OwnerError } from './errors.js';
import { commitTemp, writeTemp } from './files.js';
import type { OwnerKey } from './key-file.js';
import type { ListSecrets } from './lists.js';

const FORMAT = 'recrypt-list-key';

/**
 * The mailbox's first group secret: it stays in the owner key file through every
 * rotation (`formerGroups`), so list key files written before a rotation still open.
 */
function firstGroupSecret(owner: OwnerKey) {
  return owner.formerGroups?.[0]?.groupSecret ?? owner.groupSecret;
}

function fileKey(owner: OwnerKey, list: string): Buffer {
  return Buffer.from(
    hkdfSync(
      'sha256',
      scalarToBytes(firstGroupSecret(owner)),
      Buffer.from(list),
      'recrypt list key file v1',
      32,
    ),
  );
}

export function encodeListKeyFile(secrets: ListSecrets, owner: OwnerKey): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', fileKey(owner, secrets.address), iv);
  cipher.setAAD(Buffer.from(`${FORMAT}\0${owner.address}\0${secrets.address}`));
  const plain = JSON.stringify(
    secrets.groups.map((g) => ({
      groupId: g.groupId,
      secret: Buffer.from(scalarToBytes(g.secret)).toString('hex'),
      certificate: Buffer.from(g.certificate).toString('base64'),
    })),
  );
  const ciphertext = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  return `${JSON.stringify(
    {
      format: FORMAT,
      owner: owner.address,
      list: secrets.address,
      iv: iv.toString('base64'),
      tag: cipher.getAuthTag().toString('base64'),
      ciphertext: ciphertext.toString('base64'),
    },
    null,
    2,
  )}\n`;
}

export function readListKeyFile(path: string, owner: OwnerKey): ListSecrets {
  let file: Record<string, string>;
  try {
    file = JSON.parse(readFileSync(path, 'utf8')) as Record<string, string>;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new OwnerError(
      code === 'ENOENT' ? 'key-file-missing' : 'corrupt-key-file',
      code === 'ENOENT' ? `no list key file at ${path}` : `${path} is not a list key file`,
    );
  }
  if (file.format !== FORMAT || typeof file.list !== 'string')
    throw new OwnerError('corrupt-key-file', `${path} is not a list key file`);
  try {
    const decipher = createDecipheriv(
      'aes-256-gcm',
      fileKey(owner, file.list),
      Buffer.from(file.iv!, 'base64'),
    );
    decipher.setAAD(Buffer.from(`${FORMAT}\0${owner.address}\0${file.list}`));
    decipher.setAuthTag(Buffer.from(file.tag!, 'base64'));
    const plain = Buffer.concat([
      decipher.update(Buffer.from(file.ciphertext!, 'base64')),
      decipher.final(),
    ]).toString('utf8');
    const groups = (JSON.parse(plain) as Array<Record<string, string>>).map((g) => ({
      groupId: g.groupId!,
      secret: scalarFromBytes(Buffer.from(g.secret!, 'hex')),
      certificate: new Uint8Array(Buffer.from(g.certificate!, 'base64')),
    }));
    return { address: file.list, groups };
  } catch {
    throw new OwnerError('corrupt-key-file', `${path} does not open with this owner key`);
  }
}

/** A new file (refuses to overwrite), or `replace` for an existing one (rotation). */
export function writeListKeyFile(
  path: string,
  secrets: ListSecrets,
  owner: OwnerKey,
  replace = false,
): void {
  const temp = writeTemp(path, encodeListKeyFile(secrets, owner));
  if (replace) renameSync(temp, path);
  else commitTemp(temp, path);
}
