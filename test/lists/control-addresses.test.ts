/**
 * A list's control addresses and the unsubscribe confirmation token: parsing vectors,
 * and tokens that bind list, member and expiry under the secret.
 */
import { describe, expect, it } from 'vitest';
import {
  CONFIRM_TTL_MS,
  checkConfirmationToken,
  confirmationToken,
  controlAddress,
  parseControlAddress,
} from '../../src/lists/control-addresses.js';

describe('parseControlAddress', () => {
  it.each([
    ['dev-owner@lists.test', { list: 'dev@lists.test', action: 'owner' }],
    ['Dev-Bounces@Lists.Test', { list: 'dev@lists.test', action: 'bounces' }],
    ['dev-unsubscribe@lists.test', { list: 'dev@lists.test', action: 'unsubscribe' }],
    ['dev-leave@lists.test', { list: 'dev@lists.test', action: 'unsubscribe' }],
    ['big-team-owner@lists.test', { list: 'big-team@lists.test', action: 'owner' }],
    [
      'dev-confirm+abc123xyz@lists.test',
      { list: 'dev@lists.test', action: 'confirm', token: 'abc123xyz' },
    ],
  ])('%s', (address, expected) => {
    expect(parseControlAddress(address)).toEqual(expected);
  });

  it.each([
    'dev@lists.test',
    '-owner@lists.test',
    'dev-confirm+@lists.test',
    'nodomain',
    'dev-owners@x',
  ])('%s is no control address', (address) => {
    expect(parseControlAddress(address)).toBeNull();
  });

  it('round-trips with controlAddress', () => {
    for (const action of ['owner', 'bounces', 'unsubscribe'] as const) {
      expect(parseControlAddress(controlAddress('dev@lists.test', action))).toEqual({
        list: 'dev@lists.test',
        action,
      });
    }
  });
});

describe('confirmation tokens', () => {
  const now = Date.UTC(2026, 10, 29, 12, 0, 0);
  const secret = 'a gateway secret';

  it('is valid for the member it was made for, until it expires', () => {
    const token = confirmationToken(secret, 'dev@lists.test', 'Alice@Lists.Test', now);
    expect(token).toMatch(/^[0-9a-z]+$/);
    expect(`dev-confirm+${token}`.length).toBeLessThanOrEqual(64);
    expect(checkConfirmationToken(secret, 'dev@lists.test', 'alice@lists.test', token, now)).toBe(
      'valid',
    );
    expect(
      checkConfirmationToken(
        secret,
        'dev@lists.test',
        'alice@lists.test',
        token,
        now + CONFIRM_TTL_MS - 60_000,
      ),
    ).toBe('valid');
    expect(
      checkConfirmationToken(
        secret,
        'dev@lists.test',
        'alice@lists.test',
        token,
        now + CONFIRM_TTL_MS + 120_000,
      ),
    ).toBe('expired');
  });

  it('is refused for another member, list or secret, and when altered', () => {
    const token = confirmationToken(secret, 'dev@lists.test', 'alice@lists.test', now);
    expect(checkConfirmationToken(secret, 'dev@lists.test', 'mallory@lists.test', token, now)).toBe(
      'invalid',
    );
    expect(checkConfirmationToken(secret, 'ops@lists.test', 'alice@lists.test', token, now)).toBe(
      'invalid',
    );
    expect(checkConfirmationToken('other', 'dev@lists.test', 'alice@lists.test', token, now)).toBe(
      'invalid',
    );
    const flipped = token.slice(0, -1) + (token.endsWith('a') ? 'b' : 'a');
    expect(checkConfirmationToken(secret, 'dev@lists.test', 'alice@lists.test', flipped, now)).toBe(
      'invalid',
    );
    // A later expiry written into the token does not survive the MAC.
    const later = (parseInt(token.slice(0, -16), 32) + 100_000).toString(32) + token.slice(-16);
    expect(checkConfirmationToken(secret, 'dev@lists.test', 'alice@lists.test', later, now)).toBe(
      'invalid',
    );
    for (const bad of ['', 'x', 'a'.repeat(200), 'ZZZZ']) {
      expect(checkConfirmationToken(secret, 'dev@lists.test', 'alice@lists.test', bad, now)).toBe(
        'invalid',
      );
    }
  });
});
