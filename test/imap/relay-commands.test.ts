/**
 * The client relay's parts on their own (client-side.test.ts runs them inside the relay):
 * which commands are refused and with what stand-in, what is read from or changed in a
 * command line, and the APPEND messages held under the encryptor's limits.
 */
import { describe, expect, it } from 'vitest';
import { AppendBudget } from '../../src/imap/append-budget.js';
import { AppendMessages } from '../../src/imap/append-messages.js';
import {
  beforeLiteral,
  normalizeMailbox,
  parseMailbox,
  withUid,
} from '../../src/imap/command-line.js';
import type { AppendEncryptor } from '../../src/imap/ports.js';
import { standInFor, type ReadOnlyPolicy } from '../../src/imap/refused-commands.js';

describe('refused commands', () => {
  it('replaces what would take the session out of the proxy, and an IDLE with arguments', () => {
    for (const name of ['COMPRESS', 'STARTTLS', 'AUTHENTICATE', 'LOGIN', 'NOTIFY', 'URLFETCH'])
      expect(standInFor(`a ${name} x`, 'a', name, undefined)).toBe('X-REFUSED-BY-PROXY');
    expect(standInFor('a IDLE', 'a', 'IDLE', undefined)).toBeNull();
    expect(standInFor('a idle', 'a', 'IDLE', undefined)).toBeNull();
    expect(standInFor('a IDLE {5+}', 'a', 'IDLE', undefined)).toBe('X-REFUSED-BY-PROXY');
    expect(standInFor('a FETCH 1 FLAGS', 'a', 'FETCH', undefined)).toBeNull();
  });

  it("sends a read-only policy's refusals as NOOP, and asks the policy only about the rest", () => {
    const asked: string[] = [];
    const policy: ReadOnlyPolicy = {
      refuses: (tag, name) => {
        asked.push(`${tag} ${name}`);
        return name === 'STORE';
      },
    };
    expect(standInFor('s STORE 1 +FLAGS (\\Seen)', 's', 'STORE', policy)).toBe('NOOP');
    expect(standInFor('f FETCH 1 FLAGS', 'f', 'FETCH', policy)).toBeNull();
    expect(standInFor('c COMPRESS DEFLATE', 'c', 'COMPRESS', policy)).toBe('X-REFUSED-BY-PROXY');
    // The policy notes the tags it refuses, so it must not see those refused anyway.
    expect(asked).toEqual(['s STORE', 'f FETCH']);
  });
});

describe('command line', () => {
  it('reads the mailbox of SELECT: quoted (unescaped, UTF-8) or an atom', () => {
    expect(parseMailbox('"Sent \\"Items\\""')).toBe('Sent "Items"');
    expect(parseMailbox(Buffer.from('"Entwürfe"', 'utf8').toString('latin1'))).toBe('Entwürfe');
    expect(parseMailbox('Archive (CONDSTORE)')).toBe('Archive');
    expect(parseMailbox('"unterminated')).toBeNull();
    expect(parseMailbox('')).toBeNull();
    expect(normalizeMailbox('inbox')).toBe('INBOX');
    expect(normalizeMailbox('Inbox/Sub')).toBe('Inbox/Sub');
  });

  it('cuts the literal announcement and adds UID only to a plain partial FETCH past byte 0', () => {
    expect(beforeLiteral(Buffer.from('a APPEND Sent (\\Seen) {12+}')).toString()).toBe(
      'a APPEND Sent (\\Seen) ',
    );
    const uid = (line: string): string => withUid(Buffer.from(line, 'latin1'), line).toString();
    expect(uid('f FETCH 1 (FLAGS BODY.PEEK[]<10.5>)')).toBe(
      'f FETCH 1 (UID FLAGS BODY.PEEK[]<10.5>)',
    );
    expect(uid('f FETCH 1 BODY[TEXT]<1.5>')).toBe('f FETCH 1 (UID BODY[TEXT]<1.5>)');
    for (const same of [
      'f FETCH 1 (UID BODY[]<10.5>)',
      'f FETCH 1 (BODY[]<0.5>)',
      'f FETCH 1 FLAGS',
    ])
      expect(uid(same)).toBe(same);
  });
});

describe('APPEND messages', () => {
  const budget = new AppendBudget({ perAccount: 30, total: 100 });
  const encryptor: AppendEncryptor = {
    maxBytes: 20,
    encrypt: (message) => Buffer.concat([Buffer.from('ENC:'), message]),
    reserve: (bytes) => budget.reserve('a@example.org', bytes),
    release: (bytes) => budget.release('a@example.org', bytes),
  };

  it('refuses a message over maxBytes or over the budget before reading it', () => {
    const appends = new AppendMessages(encryptor);
    expect(appends.start(Buffer.from('a APPEND Sent {21}'), 21)).toBe('too-big');
    expect(appends.active).toBe(false);
    const other = new AppendMessages(encryptor);
    expect(other.start(Buffer.from('b APPEND Sent {20}'), 20)).toBeNull();
    expect(appends.start(Buffer.from('a APPEND Sent {11}'), 11)).toBe('limit');
    other.release();
    expect(budget.heldBy('a@example.org')).toBe(0);
  });

  it('reads a message whole, announces its ciphertext, and gives its budget back once', () => {
    const appends = new AppendMessages(encryptor);
    expect(appends.start(Buffer.from('a APPEND Sent {5+}'), 5)).toBeNull();
    appends.add(Buffer.from('he'));
    appends.add(Buffer.from('llo'));
    const { line, data } = appends.encrypt();
    expect(line.toString()).toBe('a APPEND Sent {9}');
    expect(data.toString()).toBe('ENC:hello');
    expect(appends.active).toBe(true);
    expect(budget.heldBy('a@example.org')).toBe(5);
    appends.end();
    appends.release();
    appends.release();
    expect(budget.heldBy('a@example.org')).toBe(0);
  });
});
