/**
 * The UID sets the full pass reads from ESEARCH (src/bridge/uid-set.ts): expanded in
 * order and once each, and refused, rather than expanded, when they are not UID sets or
 * name more UIDs than the mailbox has messages.
 */
import { describe, expect, it } from 'vitest';
import { expandUidSet } from '../../src/bridge/uid-set.js';

describe('a UID set from the gateway', () => {
  it('expands ranges, either way round, in order and once each', () => {
    expect(expandUidSet('', 10)).toEqual([]);
    expect(expandUidSet('7', 10)).toEqual([7]);
    expect(expandUidSet('1:3,9,5:4', 10)).toEqual([1, 2, 3, 4, 5, 9]);
    expect(expandUidSet('2:3,3', 10)).toEqual([2, 3]);
    expect(expandUidSet('4294967295', 1)).toEqual([4294967295]);
  });

  it('refuses more UIDs than the limit, before expanding them', () => {
    expect(expandUidSet('1:4294967295', 150)).toBeNull();
    expect(expandUidSet('1:100,200:300', 150)).toBeNull();
    expect(expandUidSet('1:150', 150)).toHaveLength(150);
  });

  it('refuses what is not a UID set', () => {
    for (const bad of ['*', '1:*', '0', '0:3', '1,,2', '1:2:3', 'a', '-1', '4294967296', ' 1'])
      expect(expandUidSet(bad, 1000), bad).toBeNull();
  });
});
