import { describe, expect, it } from 'vitest';
import {
  accountCredentialSalt,
  deviceCredentialUploadProblem,
  hashDeviceCredential,
  isDeviceCredentialHash,
  matchDeviceCredential,
  verifyDeviceCredential,
} from '../../src/keystore/index.js';

describe('device credentials', () => {
  it('verify the right password and refuse others', async () => {
    const hash = await hashDeviceCredential('Tr0ub4dor&3 generated');
    expect(isDeviceCredentialHash(hash)).toBe(true);
    expect(hash).not.toContain('Tr0ub4dor');
    expect(await verifyDeviceCredential('Tr0ub4dor&3 generated', hash)).toBe(true);
    expect(await verifyDeviceCredential('Tr0ub4dor&3 generatee', hash)).toBe(false);
    expect(await verifyDeviceCredential('', hash)).toBe(false);
  });

  it('salt every hash', async () => {
    const a = await hashDeviceCredential('same password');
    const b = await hashDeviceCredential('same password');
    expect(a).not.toBe(b);
    expect(await verifyDeviceCredential('same password', b)).toBe(true);
  });

  it('verify nothing against a malformed hash, and refuse bad passwords to hash', async () => {
    const hash = await hashDeviceCredential('pw');
    const parts = hash.split('$');
    const malformed = [
      '',
      'pw',
      parts.slice(0, 5).join('$'),
      ['bcrypt', ...parts.slice(1)].join('$'),
      [parts[0], '40', ...parts.slice(2)].join('$'),
      // Parameters other than the published ones: refused even where well-formed.
      [parts[0], '20', '99', '99', ...parts.slice(4)].join('$'),
      [parts[0], '15', ...parts.slice(2)].join('$'),
      [parts[0], parts[1], '1', ...parts.slice(3)].join('$'),
      [...parts.slice(0, 5), 'AAAA'].join('$'),
    ];
    for (const bad of malformed) {
      expect(isDeviceCredentialHash(bad)).toBe(false);
      expect(await verifyDeviceCredential('pw', bad)).toBe(false);
    }
    await expect(hashDeviceCredential('')).rejects.toThrow(TypeError);
    await expect(hashDeviceCredential('x'.repeat(1025))).rejects.toThrow(TypeError);
  });

  it("salt an upload with the account's salt, whatever the address's case or spaces", async () => {
    const hash = await hashDeviceCredential('pw', 'Bob@Example.org');
    expect(hash.split('$')[4]).toBe(accountCredentialSalt('bob@example.org').toString('base64url'));
    expect(deviceCredentialUploadProblem(hash, ' bob@example.org\u00a0')).toBeNull();
    expect(deviceCredentialUploadProblem(hash, 'carol@example.org')).toMatch(/salt/);
    expect(
      deviceCredentialUploadProblem(await hashDeviceCredential('pw'), 'bob@example.org'),
    ).toMatch(/salt/);
    expect(deviceCredentialUploadProblem('scrypt$20$99$99$x$y', 'bob@example.org')).toMatch(
      /log2 N 14, r 8, p 1/,
    );
  });

  it('derive one key per login whatever the number of devices, and find the right one', async () => {
    const address = 'dave@example.org';
    const hashes = await Promise.all(
      ['a', 'b', 'c', 'd'].map((name) => hashDeviceCredential(`password ${name}`, address)),
    );
    for (let count = 0; count <= hashes.length; count++) {
      const some = hashes.slice(0, count);
      const wrong = await matchDeviceCredential('password x', address, some);
      expect(wrong).toEqual({ index: -1, derivations: 1 });
      if (count > 0) {
        const last = await matchDeviceCredential(`password ${'abcd'[count - 1]}`, address, some);
        expect(last).toEqual({ index: count - 1, derivations: 1 });
      }
    }
    // An unknown or malformed account costs the same one derivation.
    expect(await matchDeviceCredential('pw', 'nobody@example.org', [])).toEqual({
      index: -1,
      derivations: 1,
    });
    expect(await matchDeviceCredential('pw', 'not an address', [])).toEqual({
      index: -1,
      derivations: 1,
    });
    // A device stored with a random salt (before uploads were checked) still logs in, at
    // one more derivation; a malformed hash adds none and matches nothing.
    const legacy = await hashDeviceCredential('password legacy');
    const mixed = [...hashes, 'scrypt$20$99$99$AAAAAAAAAAAAAAAAAAAAAA$x', legacy];
    expect(await matchDeviceCredential('password legacy', address, mixed)).toEqual({
      index: mixed.length - 1,
      derivations: 2,
    });
    expect(await matchDeviceCredential('x'.repeat(2000), address, hashes)).toEqual({
      index: -1,
      derivations: 1,
    });
  });
});
