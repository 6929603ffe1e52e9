import { describe, expect, it } from 'vitest';
import { generatePassword } from '../../src/owner/index.js';

describe('generated device and .p12 passwords', () => {
  it('are 24 base64url characters and never start with "-" (an option to command-line clients)', () => {
    // One in 64 raw draws starts with "-": 4,000 draws meet it with certainty for practical purposes.
    const passwords = Array.from({ length: 4000 }, generatePassword);
    for (const password of passwords) {
      expect(password).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_-]{23}$/);
    }
    expect(new Set(passwords).size).toBe(passwords.length);
  });
});
