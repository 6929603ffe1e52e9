import { describe, expect, it } from 'vitest';
import {
  hashDeviceCredential,
  isDeviceCredentialHash,
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
      [...parts.slice(0, 5), 'AAAA'].join('$'),
    ];
    for (const bad of malformed) {
      expect(isDeviceCredentialHash(bad)).toBe(false);
      expect(await verifyDeviceCredential('pw', bad)).toBe(false);
    }
    await expect(hashDeviceCredential('')).rejects.toThrow(TypeError);
    await expect(hashDeviceCredential('x'.repeat(1025))).rejects.toThrow(TypeError);
  });
});
