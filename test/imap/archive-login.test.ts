/**
 * The list archive's login forms and read-only rule as pure functions: which
 * user name means which identity, what a SASL PLAIN response decodes to, and which
 * replies the read-only policy rewrites. The whole path runs against real stores in
 * test/lists/archive-proxy.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { ArchiveReadOnly } from '../../src/imap/archive.js';
import { loginIdentity, saslPlainLogin } from '../../src/imap/login-identity.js';

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

describe('loginIdentity', () => {
  it.each([
    ['alice@example.org', { member: 'alice@example.org', list: null }],
    [
      'team@lists.example.org*alice@example.org',
      { member: 'alice@example.org', list: 'team@lists.example.org' },
    ],
    // `*` in a local part: before the list's `@` it belongs to the address.
    ['a*b@example.org', { member: 'a*b@example.org', list: null }],
    [
      't*m@lists.example.org*a*b@example.org',
      { member: 'a*b@example.org', list: 't*m@lists.example.org' },
    ],
    ['no-at-sign*alice@example.org', { member: 'no-at-sign*alice@example.org', list: null }],
    ['team@lists.example.org*', { member: '', list: 'team@lists.example.org' }],
  ])('%s', (name, identity) => {
    expect(loginIdentity(name)).toEqual(identity);
  });
});

describe('saslPlainLogin', () => {
  it('reads authzid as the archive to open and authcid as the member', () => {
    expect(saslPlainLogin(b64('team@l.org\0alice@e.org\0pw'))).toEqual({
      identity: { member: 'alice@e.org', list: 'team@l.org' },
      password: 'pw',
    });
  });

  it('an empty authzid, or one equal to authcid, is a plain login; authcid may use the * form', () => {
    for (const authzid of ['', 'alice@e.org']) {
      expect(saslPlainLogin(b64(`${authzid}\0alice@e.org\0pw`))?.identity).toEqual({
        member: 'alice@e.org',
        list: null,
      });
    }
    expect(saslPlainLogin(b64('\0team@l.org*alice@e.org\0pw'))?.identity).toEqual({
      member: 'alice@e.org',
      list: 'team@l.org',
    });
  });

  it('anything but three fields in base64 is no PLAIN response', () => {
    for (const response of ['=', b64('alice\0pw'), b64('a\0b\0c\0d'), 'not base64!', '*']) {
      expect(saslPlainLogin(response), response).toBeNull();
    }
  });
});

describe('ArchiveReadOnly', () => {
  it('refuses every command outside the read allow-list and rewrites only their replies', () => {
    const policy = new ArchiveReadOnly();
    for (const name of ['FETCH', 'SEARCH', 'EXAMINE', 'SELECT', 'IDLE', '']) {
      expect(policy.refuses('r', name), name).toBe(false);
    }
    for (const name of ['APPEND', 'STORE', 'EXPUNGE', 'COPY', 'MOVE', 'REPLACE', 'XUNKNOWN']) {
      expect(policy.refuses(`w-${name}`, name), name).toBe(true);
    }
    expect(policy.responseLine('r OK FETCH completed')).toBe('r OK FETCH completed');
    expect(policy.responseLine('* 1 FETCH (FLAGS ())')).toBe('* 1 FETCH (FLAGS ())');
    expect(policy.responseLine('w-STORE OK NOOP completed.')).toBe(
      'w-STORE NO [NOPERM] The list archive is read-only',
    );
    // Once per refused command: a later command with the same tag is answered as it is.
    expect(policy.responseLine('w-STORE OK Store completed.')).toBe('w-STORE OK Store completed.');
  });

  it('counts a tag refused twice in a row', () => {
    const policy = new ArchiveReadOnly();
    policy.refuses('a', 'STORE');
    policy.refuses('a', 'EXPUNGE');
    expect(policy.responseLine('a OK NOOP completed')).toMatch(/^a NO \[NOPERM\]/);
    expect(policy.responseLine('a OK NOOP completed')).toMatch(/^a NO \[NOPERM\]/);
    expect(policy.responseLine('a OK NOOP completed')).toBe('a OK NOOP completed');
  });
});
