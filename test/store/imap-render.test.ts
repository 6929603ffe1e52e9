import { describe, expect, it } from 'vitest';
import { parseMessageStructure } from '../../src/store/mime/index.js';
import { renderBody } from '../../src/store/imap/render/structure.js';

const message = (headers: string) => Buffer.from(`${headers}\r\n\r\nhello\r\n`, 'latin1');

describe('BODYSTRUCTURE rendering', () => {
  it('names the RFC 2045 default charset of a text part that has none', () => {
    const structure = parseMessageStructure(message('Subject: x\r\nContent-Type: text/plain'));
    expect(renderBody(structure.root, false)).toBe(
      '("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 7 1)',
    );
  });

  it('keeps a charset the message gives', () => {
    const structure = parseMessageStructure(
      message('Content-Type: text/plain; charset=utf-8; format=flowed'),
    );
    expect(renderBody(structure.root, false)).toMatch(
      /^\("text" "plain" \("charset" "utf-8" "format" "flowed"\)/,
    );
  });

  it('adds no charset to a non-text part', () => {
    const structure = parseMessageStructure(message('Content-Type: application/octet-stream'));
    expect(renderBody(structure.root, false)).toMatch(/^\("application" "octet-stream" NIL /);
  });
});
