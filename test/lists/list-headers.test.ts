/**
 * The list header rewrite (RFC 2369, RFC 2919) on sample posts: fields added in front,
 * the sender's List-* fields dropped, the subject tag added once, line endings and the
 * body kept byte for byte.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { addListHeaders, type ListHeaderInfo } from '../../src/smtp/list-headers.js';

const fixture = (name: string): Buffer =>
  readFileSync(fileURLToPath(new URL(`../fixtures/lists/${name}`, import.meta.url)));

const info: ListHeaderInfo = {
  address: 'dev@lists.test',
  displayName: 'Developers',
  acceptsPosts: true,
  subjectTag: '[dev]',
};

function split(message: Buffer, eol: string): { head: string; body: Buffer } {
  const end = message.indexOf(`${eol}${eol}`);
  return {
    head: message.subarray(0, end).toString('latin1'),
    body: message.subarray(end + eol.length * 2),
  };
}

describe('addListHeaders', () => {
  it('keeps LF line ends and folded fields, drops the sender’s List-* fields, tags once', () => {
    const input = fixture('headers-lf-folded.eml');
    const out = addListHeaders(input, info);
    const { head, body } = split(out, '\n');
    expect(head).not.toContain('\r');
    expect(head).not.toMatch(/old\.example|x@example\.org/);
    expect(head).toContain('List-Id: "Developers" <dev.lists.test>\n');
    expect(head).toContain('Subject: [dev] a long subject that is\n folded over two lines');
    expect(body.equals(split(input, '\n').body)).toBe(true);
    // Again: the tag is not doubled, the list fields are not repeated.
    const twice = addListHeaders(out, info).toString('latin1');
    expect(twice.match(/\[dev\]/g)).toHaveLength(1);
    expect(twice.match(/^List-Id:/gim)).toHaveLength(1);
  });

  it('adds a Subject when there is none, and List-Post: NO for announce lists', () => {
    const input = fixture('headers-no-subject.eml');
    const out = addListHeaders(input, {
      ...info,
      acceptsPosts: false,
      archiveUrl: 'imap://h/INBOX',
    });
    const { head, body } = split(out, '\r\n');
    expect(head).toContain('Subject: [dev]');
    expect(head).toContain('List-Post: NO');
    expect(head).toContain('List-Archive: <imap://h/INBOX>');
    expect(head).toContain(
      'List-Unsubscribe: <mailto:dev-unsubscribe@lists.test?subject=unsubscribe>',
    );
    expect(head).toContain('List-Help: <mailto:dev-owner@lists.test?subject=help>');
    expect(head).toContain('List-Owner: <mailto:dev-owner@lists.test>');
    expect(body.equals(split(input, '\r\n').body)).toBe(true);
  });

  it('without a tag leaves the Subject alone', () => {
    const out = addListHeaders(fixture('post.eml'), { ...info, subjectTag: '' }).toString('latin1');
    expect(out).toContain('\r\nSubject: [dev] release plan\r\n');
    expect(out.match(/^List-Id:/gim)).toHaveLength(1);
  });
});
