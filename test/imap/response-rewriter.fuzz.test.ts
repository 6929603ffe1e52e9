/**
 * 20,000 random upstream outputs through the rewriter: no crash, no hang, the same
 * length out, and no byte changed outside a literal the rewriter reported as recrypted.
 * The transform here is a marker transform (a pure function with edits placed where the
 * test can predict them) so that structured cases can check every byte exactly; the
 * real transform is exercised in response-rewriter.test.ts and the end-to-end tests.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PlanCache } from '../../src/imap/plan-cache.js';
import type { BodyEdit, BodyPlan, BodyTransform } from '../../src/imap/ports.js';
import type { BodyEvent } from '../../src/imap/body-literal.js';
import { ResponseRewriter } from '../../src/imap/response-rewriter.js';

const MARK = Buffer.from('RCRY');
const REPLACEMENT = Buffer.from('@@@@');

/** Recrypts bodies starting with RCRY by replacing bytes 4..7; needs 8 bytes to decide. */
const markerTransform: BodyTransform = {
  plan(prefix: Uint8Array): BodyPlan {
    const head = Buffer.from(prefix.subarray(0, 4));
    if (prefix.length >= 4 && !head.equals(MARK))
      return { kind: 'unchanged', reason: 'not-marked' };
    if (prefix.length < 4 && !MARK.subarray(0, prefix.length).equals(head))
      return { kind: 'unchanged', reason: 'not-marked' };
    if (prefix.length < 8) return { kind: 'need-more', atLeast: 8 };
    return { kind: 'edits', edits: [{ offset: 4, bytes: REPLACEMENT }] };
  },
  apply(chunk: Uint8Array, chunkOffset: number, edits: readonly BodyEdit[]): Uint8Array {
    const out = Uint8Array.from(chunk);
    for (const edit of edits) {
      for (let i = 0; i < edit.bytes.length; i++) {
        const at = edit.offset + i - chunkOffset;
        if (at >= 0 && at < out.length) out[at] = edit.bytes[i]!;
      }
    }
    return out;
  },
};

interface Piece {
  /** Plans are cached per (mailbox, UIDVALIDITY, UID, section): a real server never sends two contents for one key. */
  key: string;
  bytes: Buffer;
  /** Offsets (within bytes) that must come out as REPLACEMENT bytes. */
  edited: number[];
}

const imapChar = fc.constantFrom(
  ...'* ()[]{}"\\~+<>.0123456789 FETCHBODYUIDRFC822TEXTOKNOBAD\r\n\t'.split(''),
);
const garbage = fc
  .oneof(
    fc.uint8Array({ maxLength: 60 }),
    fc.array(imapChar, { maxLength: 80 }).map((chars) => Buffer.from(chars.join(''), 'latin1')),
  )
  .map((bytes): Piece => ({ key: 'garbage', bytes: Buffer.from(bytes), edited: [] }));

const bodyContent = fc.oneof(
  fc.uint8Array({ maxLength: 40 }).map((rest) => Buffer.concat([MARK, Buffer.from(rest)])),
  fc.uint8Array({ maxLength: 40 }).map((bytes) => Buffer.from(bytes)),
  fc.constant(Buffer.from('RCRY\r\n)\r\n* 1 FETCH (BODY[] {3}\r\n')),
);

/** Item names that answer with the same bytes. */
const SAME_CONTENT: Record<string, string> = {
  'BODY[]<0>': 'BODY[]',
  RFC822: 'BODY[]',
  'RFC822.TEXT': 'BODY[TEXT]',
};
const sectionName = fc.constantFrom(
  'BODY[]',
  'BODY[TEXT]',
  'BODY[1]',
  'BODY[1.2]',
  'RFC822',
  'RFC822.TEXT',
  'BINARY[1]',
  'BODY[]<0>',
);
const otherItem = fc.constantFrom(
  'FLAGS (\\Seen $x)',
  'RFC822.SIZE 77',
  'INTERNALDATE "01-Jan-2024 00:00:00 +0000"',
  'MODSEQ (5)',
  'ENVELOPE ("d" "s(" NIL NIL NIL NIL NIL NIL NIL "<i>")',
);

const fetchResponse = fc
  .record({
    seq: fc.integer({ min: 1, max: 99999 }),
    uid: fc.option(fc.integer({ min: 1, max: 99999 })),
    before: fc.array(otherItem, { maxLength: 2 }),
    bodies: fc.uniqueArray(
      fc.record({ name: sectionName, content: bodyContent, binary: fc.boolean() }),
      {
        minLength: 1,
        maxLength: 3,
        selector: (body) => SAME_CONTENT[body.name] ?? body.name,
      },
    ),
    headerLiteral: fc.option(fc.uint8Array({ maxLength: 30 })),
  })
  .map(({ seq, uid, before, bodies, headerLiteral }): Piece => {
    const parts: Buffer[] = [
      Buffer.from(
        `* ${seq} FETCH (${uid === null ? '' : `UID ${uid} `}${before.map((b) => `${b} `).join('')}`,
      ),
    ];
    const edited: number[] = [];
    let length = parts[0]!.length;
    const add = (bytes: Buffer): void => {
      parts.push(bytes);
      length += bytes.length;
    };
    if (headerLiteral !== null) {
      add(Buffer.from(`BODY[HEADER] {${headerLiteral.length}}\r\n`));
      add(Buffer.from(headerLiteral));
      add(Buffer.from(' '));
    }
    bodies.forEach(({ name, content, binary }, index) => {
      add(
        Buffer.from(
          `${index > 0 ? ' ' : ''}${name} ${binary && name.startsWith('BINARY') ? '~' : ''}{${content.length}}\r\n`,
        ),
      );
      if (content.length >= 8 && content.subarray(0, 4).equals(MARK))
        for (let i = 4; i < 8; i++) edited.push(length + i);
      add(content);
    });
    add(Buffer.from(')\r\n'));
    return { key: uid === null ? `seq-${seq}` : `uid-${uid}`, bytes: Buffer.concat(parts), edited };
  });

const safeLine = fc
  .constantFrom(
    '* 3 EXISTS\r\n',
    'A1 OK [READ-WRITE] Select completed\r\n',
    '* OK [UIDVALIDITY 9] x\r\n',
    '* LIST (\\Noselect) "/" {4}\r\nab{}\r\n',
    '+ go ahead\r\n',
    '* SEARCH 1 2 3\r\n',
  )
  .map((line): Piece => ({ key: 'line', bytes: Buffer.from(line), edited: [] }));

function concat(pieces: Piece[]): { input: Buffer; edited: Set<number> } {
  const edited = new Set<number>();
  let offset = 0;
  for (const piece of pieces) {
    for (const at of piece.edited) edited.add(offset + at);
    offset += piece.bytes.length;
  }
  return { input: Buffer.concat(pieces.map((p) => p.bytes)), edited };
}

/**
 * With `reuse`, each chunk is read into one buffer that is overwritten (0xEE) as soon as
 * a write has finished and the rewriter holds no view of it, as the relay reads into one
 * buffer (relay-pump.ts).
 */
async function run(
  input: Buffer,
  chunk: number,
  reuse = false,
): Promise<{ output: Buffer; events: BodyEvent[] }> {
  const out: Buffer[] = [];
  const events: BodyEvent[] = [];
  const rewriter = new ResponseRewriter(
    {
      transform: markerTransform,
      cache: new PlanCache(),
      selection: () => ({ mailbox: 'INBOX', uidValidity: 3 }),
      fetchPrefix: async () => null,
      onBody: (event) => events.push(event),
    },
    (bytes) => out.push(Buffer.from(bytes)),
  );
  let scratch = Buffer.alloc(chunk);
  for (let offset = 0; offset < input.length; offset += chunk) {
    const piece = input.subarray(offset, offset + chunk);
    if (!reuse) {
      await rewriter.write(piece);
      continue;
    }
    piece.copy(scratch);
    await rewriter.write(scratch.subarray(0, piece.length));
    if (rewriter.holdsInput()) scratch = Buffer.alloc(chunk);
    else scratch.fill(0xee);
  }
  rewriter.end();
  return { output: Buffer.concat(out), events };
}

describe('response rewriter fuzz', () => {
  it('random upstream output: same length, bytes changed only inside literals reported as recrypted', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(garbage, fetchResponse, safeLine), { maxLength: 6 }),
        fc.integer({ min: 1, max: 64 }),
        async (pieces, chunk) => {
          const { input } = concat(pieces);
          const { output, events } = await run(input, chunk);
          expect(output.length).toBe(input.length);
          const recrypted = events.filter((e) => e.result === 'recrypted');
          for (let i = 0; i < input.length; i++) {
            if (output[i] === input[i]) continue;
            expect(recrypted.some((e) => i >= e.start && i < e.start + e.length)).toBe(true);
          }
        },
      ),
      { numRuns: 20_000 },
    );
  }, 240_000);

  it('read into one buffer overwritten once the rewriter lets go of it: the same output and events', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(garbage, fetchResponse, safeLine), { maxLength: 6 }),
        fc.integer({ min: 1, max: 64 }),
        async (pieces, chunk) => {
          const { input } = concat(pieces);
          const fresh = await run(input, chunk);
          const reused = await run(input, chunk, true);
          expect(reused.output.equals(fresh.output)).toBe(true);
          expect(reused.events).toEqual(fresh.events);
        },
      ),
      { numRuns: 5_000 },
    );
  }, 240_000);

  it('well-formed upstream output: exactly the marked body bytes change, whatever the chunking', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fetchResponse, {
          minLength: 1,
          maxLength: 4,
          selector: (piece) => piece.key,
        }),
        fc.array(safeLine, { maxLength: 4 }),
        fc.integer({ min: 1, max: 64 }),
        async (responses, lines, chunk) => {
          const pieces = responses.flatMap((response, i) =>
            lines[i] === undefined ? [response] : [lines[i]!, response],
          );
          const { input, edited } = concat(pieces);
          const { output } = await run(input, chunk);
          expect(output.length).toBe(input.length);
          for (let i = 0; i < input.length; i++) {
            const expected = edited.has(i) ? REPLACEMENT[0]! : input[i];
            if (output[i] !== expected) expect({ at: i, got: output[i], expected }).toBeNull();
          }
        },
      ),
      { numRuns: 3_000 },
    );
  }, 120_000);
});
