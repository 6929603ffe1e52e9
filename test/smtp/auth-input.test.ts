/**
 * What mailauth is given (auth-input.ts): the header section alone for unsigned mail;
 * for signed mail only the topmost DKIM signatures, never an ARC set, and the body as
 * received.
 */
import { describe, expect, it } from 'vitest';
import { authenticationInput } from '../../src/smtp/auth-input.js';

const body = Buffer.from('x'.repeat(200_000));
const sig = (n: number): string => `DKIM-Signature: v=1; d=d${n}.example;\r\n\tb=B${n}\r\n`;

describe('authenticationInput', () => {
  it('unsigned mail: only the header section, without ARC sets', () => {
    const head = 'From: a@b.example\r\nARC-Seal: i=1; cv=none;\r\n b=x\r\nSubject: s\r\n\r\n';
    const parts = authenticationInput(Buffer.concat([Buffer.from(head), body]));
    expect(Buffer.concat(parts).toString()).toBe('From: a@b.example\r\nSubject: s\r\n\r\n');
  });

  it('signed mail: the first signatures up to the cap, the header otherwise whole, then the body', () => {
    const head = `${[0, 1, 2, 3, 4, 5, 6].map(sig).join('')}From: a@b.example\r\n\r\n`;
    const [kept, rest] = authenticationInput(Buffer.concat([Buffer.from(head), body]), 3);
    expect(kept!.toString()).toBe(`${sig(0)}${sig(1)}${sig(2)}From: a@b.example\r\n\r\n`);
    expect(rest!.equals(body)).toBe(true);
  });

  it('a message without a blank line is given whole', () => {
    const noSeparator = Buffer.from('From: a@b.example\r\nSubject: only headers\r\n');
    expect(Buffer.concat(authenticationInput(noSeparator)).equals(noSeparator)).toBe(true);
  });
});
