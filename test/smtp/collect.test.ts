/**
 * Collecting DATA: whatever the chunking and whatever SIZE the client declared (none,
 * exact, too small, too large), the message comes out whole behind its prefix; with an
 * honest SIZE it is never copied after arrival; past maxSize nothing is kept.
 */
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TRACE_HEADROOM, collectMessage, withPrefix } from '../../src/smtp/collect.js';

const chunksArb = fc
  .array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 })
  .map((chunks) => chunks.map((chunk) => Buffer.from(chunk)));

describe('collectMessage', () => {
  it('returns prefix + message for any chunking and any declared SIZE', async () => {
    await fc.assert(
      fc.asyncProperty(
        chunksArb,
        fc.option(fc.integer({ min: -5, max: 7000 })),
        fc.uint8Array({ maxLength: 600 }),
        async (chunks, declared, prefix) => {
          const message = Buffer.concat(chunks);
          const collected = await collectMessage(
            Readable.from(chunks, { objectMode: false }),
            10_000,
            declared ?? undefined,
          );
          expect(collected.sizeExceeded).toBe(false);
          expect(collected.length).toBe(message.length);
          expect(
            collected.storage
              .subarray(collected.head, collected.head + collected.length)
              .equals(message),
          ).toBe(true);
          expect(
            withPrefix(collected, Buffer.from(prefix)).equals(
              Buffer.concat([Buffer.from(prefix), message]),
            ),
          ).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('an honest SIZE: the chunks are copied into one buffer as they arrive, the prefix goes in front without a copy', async () => {
    const chunks = Array.from({ length: 50 }, (_, i) => Buffer.alloc(1000, i));
    const collected = await collectMessage(
      Readable.from(chunks, { objectMode: false }),
      1_000_000,
      50_000,
    );
    expect(collected.storage.length).toBe(TRACE_HEADROOM + 50_000);
    const whole = withPrefix(collected, Buffer.from('Received: x\r\n'));
    expect(whole.buffer).toBe(collected.storage.buffer);
    expect(whole.subarray(13).equals(Buffer.concat(chunks))).toBe(true);
  });

  it('a prefix larger than the headroom still works (by copying)', async () => {
    const collected = await collectMessage(
      Readable.from([Buffer.from('body')], { objectMode: false }),
      100,
    );
    const prefix = Buffer.alloc(TRACE_HEADROOM + 1, 'h');
    expect(withPrefix(collected, prefix).equals(Buffer.concat([prefix, Buffer.from('body')]))).toBe(
      true,
    );
  });

  it('past maxSize: sizeExceeded, nothing kept, the stream is drained', async () => {
    const stream = Readable.from([Buffer.alloc(60), Buffer.alloc(60), Buffer.alloc(60)], {
      objectMode: false,
    });
    const collected = await collectMessage(stream, 100, 50);
    expect(collected.sizeExceeded).toBe(true);
    expect(collected.storage.length).toBe(0);
    expect(stream.readableEnded).toBe(true);
  });
});
