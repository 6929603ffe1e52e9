import { describe, expect, it } from 'vitest';
import {
  ProfileError,
  canonicalAddress,
  isValidAddress,
  parseAddress,
} from '../../src/profiles/index.js';
import { vectorJson } from '../helpers/profiles-vectors.js';

const table = vectorJson<{ valid: [string, string][]; invalid: string[] }>('addresses.json');

describe('addresses', () => {
  it.each(table.valid)('%s is accepted as %s', (address, canonical) => {
    expect(canonicalAddress(address)).toBe(canonical);
    expect(parseAddress(address).local).toBe(address.slice(0, address.lastIndexOf('@')));
  });

  it.each(table.invalid)('%j is refused', (address) => {
    expect(isValidAddress(address)).toBe(false);
    expect(() => parseAddress(address)).toThrow(ProfileError);
  });

  it.each([undefined, null, 42, {}])('a non-string %j is refused', (value) => {
    expect(isValidAddress(value as unknown as string)).toBe(false);
  });
});
