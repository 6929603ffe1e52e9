/**
 * RFC 8162 owner names and RDATA, checked against a hand-checked published hash and
 * against openssl computing the same hashes and encodings independently.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ProfileError, smimeaOwnerName, smimeaRecord } from '../../src/profiles/index.js';
import { requireBinary } from '../helpers/binaries.js';
import { vectorBytes, vectorJson, vectorPath } from '../helpers/profiles-vectors.js';

const run = promisify(execFile);
const openssl = requireBinary('openssl');
const sh = requireBinary('sh');
const vectors = vectorJson<{ owner: { address: string; name: string }[]; locals: string[] }>(
  'smimea.json',
);
const group = vectorBytes('group.cer');

/** `printf %s <local> | openssl dgst -sha256`, the hex digest. */
async function opensslSha256(local: string): Promise<string> {
  const { stdout } = await run(sh, [
    '-c',
    'printf %s "$1" | "$2" dgst -sha256 -r',
    'sh',
    local,
    openssl,
  ]);
  return stdout.split(' ')[0]!.trim();
}

async function opensslHex(script: string, digest?: string): Promise<string> {
  const { stdout } = await run(
    sh,
    ['-c', script, 'sh', vectorPath('group.cer'), openssl, digest ?? ''],
    {
      encoding: 'buffer',
    },
  );
  return stdout
    .toString(digest === undefined ? 'hex' : 'utf8')
    .split(' ')[0]!
    .trim();
}

describe('owner names', () => {
  it.each(vectors.owner)('$address → the published hash', ({ address, name }) => {
    expect(smimeaOwnerName(address)).toBe(name);
  });

  it.each(vectors.locals)(
    'local part %s: the first 28 octets of openssl sha256, domain lower-cased',
    async (local) => {
      const hex = await opensslSha256(local);
      expect(smimeaOwnerName(`${local}@Example.ORG`)).toBe(
        `${hex.slice(0, 56)}._smimecert.example.org.`,
      );
    },
  );

  it('keeps the case of the local part (RFC 8162 hashes it as given)', () => {
    expect(smimeaOwnerName('Alice@example.org')).not.toBe(smimeaOwnerName('alice@example.org'));
  });
});

describe('records', () => {
  it('3 0 0 (DANE-EE, full certificate) carries the DER openssl re-encodes', async () => {
    const record = smimeaRecord('alice@example.org', group);
    const der = await opensslHex('"$2" x509 -inform DER -in "$1" -outform DER');
    expect(record.rdata).toBe(`3 0 0 ${der}`);
    expect(record.record).toBe(`${smimeaOwnerName('alice@example.org')} IN SMIMEA 3 0 0 ${der}`);
    expect(record.genericRecord).toBe(
      `${smimeaOwnerName('alice@example.org')} IN TYPE53 \\# ${group.length + 3} 030000${der}`,
    );
  });

  it('3 1 1 (SPKI, SHA-256) matches openssl hashing the public key it extracts', async () => {
    const record = smimeaRecord('alice@example.org', group, {
      selector: 1,
      matchingType: 1,
      ttl: 3600,
    });
    const hash = await opensslHex(
      '"$2" x509 -inform DER -in "$1" -pubkey -noout | "$2" pkey -pubin -outform DER | "$2" dgst -"$3" -r',
      'sha256',
    );
    expect(record.rdata).toBe(`3 1 1 ${hash}`);
    expect(record.record).toMatch(
      /^[0-9a-f]{56}\._smimecert\.example\.org\. 3600 IN SMIMEA 3 1 1 [0-9a-f]{64}$/,
    );
  });

  it('2 0 2 (certificate, SHA-512) matches openssl', async () => {
    const record = smimeaRecord('alice@example.org', group, { usage: 2, matchingType: 2 });
    const hash = await opensslHex('"$2" dgst -"$3" -r < "$1"', 'sha512');
    expect(record.rdata).toBe(`2 0 2 ${hash}`);
  });

  it.each([
    ['not a certificate', 'alice@example.org', new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x00]), {}],
    ['usage 4', 'alice@example.org', group, { usage: 4 }],
    ['selector 2', 'alice@example.org', group, { selector: 2 }],
    ['matching type 3', 'alice@example.org', group, { matchingType: 3 }],
    ['negative ttl', 'alice@example.org', group, { ttl: -1 }],
    ['bad address', 'alice@exa mple.org', group, {}],
  ])('refuses %s', (_name, address, der, options) => {
    expect(() => smimeaRecord(address, der, options as object)).toThrow(ProfileError);
  });
});
