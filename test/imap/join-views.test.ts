import { describe, expect, it } from 'vitest';
import { joinViews } from '../../src/imap/join-views.js';

describe('joinViews', () => {
  // Its own memory, like a socket read (not a slice of Buffer's shared pool).
  const chunk = Buffer.from(
    new TextEncoder().encode('* 1 FETCH (UID 1 BODY[] {5}\r\nhello)\r\n').buffer,
  );

  it('adjacent views of one chunk come back as one view of it, not a copy', () => {
    const pieces = [chunk.subarray(0, 10), chunk.subarray(10, 29), chunk.subarray(29)];
    const joined = joinViews(pieces);
    expect(Buffer.from(joined).equals(chunk)).toBe(true);
    expect(joined.buffer).toBe(chunk.buffer);
    expect(joined.byteOffset).toBe(chunk.byteOffset);
  });

  it('views that do not touch, or of other memory, are copied in order', () => {
    const other = Buffer.from('XYZ');
    const pieces = [chunk.subarray(0, 4), other, chunk.subarray(4, 10), chunk.subarray(12, 20)];
    const joined = joinViews(pieces);
    expect(Buffer.from(joined).toString('latin1')).toBe(Buffer.concat(pieces).toString('latin1'));
    expect(joined.buffer).not.toBe(chunk.buffer);
  });

  it('one piece is returned as it is', () => {
    const piece = chunk.subarray(3, 7);
    expect(joinViews([piece])).toBe(piece);
  });
});
