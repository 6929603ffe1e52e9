import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recryptTransform } from '../../src/imap/adapters/recrypt-transform.js';
import { filterCapabilityLine } from '../../src/imap/capabilities.js';
import { PlanCache, type PlanLookup, type SettledPlan } from '../../src/imap/plan-cache.js';
import { keysFingerprint } from '../../src/imap/plan-codec.js';
import { PointCache } from '../../src/imap/point-cache.js';
import { planRecrypt } from '../../src/recrypt/transform.js';
import type { BodyTransform } from '../../src/imap/ports.js';
import type { BodyEvent, PrefixRequest } from '../../src/imap/body-literal.js';
import { ResponseRewriter, type RewriterContext } from '../../src/imap/response-rewriter.js';
import { decryptWith, encryptToGroup, makeTestUser, type TestUser } from '../helpers/proxy-pki.js';
import { tempDir } from '../helpers/tmp.js';

interface Transcript {
  name: string;
  upstream: string;
  expect: ('message' | 'text')[];
}
const fixtures = JSON.parse(
  readFileSync(
    join(import.meta.dirname, '..', 'fixtures', 'imap', 'rewriter-transcripts.json'),
    'utf8',
  ),
) as { cases: Transcript[] };

/**
 * `input` through a rewriter in chunks of `chunkSizes` (cycled). With `reuse`, each chunk
 * is read into one buffer that is overwritten as soon as a write has finished and the
 * rewriter holds no view of it, as the relay reads into one buffer (relay-pump.ts): any
 * byte read later from a chunk it let go of comes out as 0xEE.
 */
async function rewrite(
  input: Uint8Array,
  context: Partial<RewriterContext> & { transform: BodyTransform },
  chunkSizes: number[] = [input.length || 1],
  reuse = false,
): Promise<{ output: Buffer; events: BodyEvent[] }> {
  const out: Uint8Array[] = [];
  const events: BodyEvent[] = [];
  const rewriter = new ResponseRewriter(
    {
      cache: new PlanCache(),
      selection: () => ({ mailbox: 'INBOX', uidValidity: 1 }),
      onBody: (event) => events.push(event),
      ...context,
    },
    (bytes) => out.push(Buffer.from(bytes)),
  );
  const copy = Buffer.from(input);
  const longest = Math.max(1, ...chunkSizes);
  let scratch = Buffer.alloc(longest);
  let offset = 0;
  for (let i = 0; offset < copy.length; i++) {
    const size = Math.max(1, chunkSizes[i % chunkSizes.length]!);
    const piece = copy.subarray(offset, offset + size);
    if (!reuse) {
      await rewriter.write(piece);
    } else {
      piece.copy(scratch);
      await rewriter.write(scratch.subarray(0, piece.length));
      if (rewriter.holdsInput()) scratch = Buffer.alloc(longest);
      else scratch.fill(0xee);
    }
    offset += size;
  }
  rewriter.end();
  return { output: Buffer.concat(out), events };
}

describe('response rewriter with the real recrypt core', () => {
  const dir = tempDir('imap-rewriter-');
  let user: TestUser;
  const original = Buffer.from(
    'From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nHello, device.\r\n'.repeat(40),
  );
  let message: Buffer;
  let head: Buffer;
  let text: Buffer;

  beforeAll(async () => {
    user = await makeTestUser(dir.path, 'alice@example.org', 2);
    message = await encryptToGroup(original, user.group);
    const split = message.indexOf('\r\n\r\n') + 4;
    head = message.subarray(0, split);
    text = message.subarray(split);
  });
  afterAll(() => dir.remove());

  function fill(template: string): {
    input: Buffer;
    spans: { start: number; kind: 'message' | 'text' | 'head' }[];
  } {
    const parts: Buffer[] = [];
    const spans: { start: number; kind: 'message' | 'text' | 'head' }[] = [];
    let length = 0;
    const expanded = template
      .replaceAll('@LEN@', String(message.length))
      .replaceAll('@TLEN@', String(text.length))
      .replaceAll('@HLEN@', String(head.length));
    for (const piece of expanded.split(/(@MSG@|@TEXT@|@HEAD@)/)) {
      let bytes: Buffer;
      if (piece === '@MSG@') {
        spans.push({ start: length, kind: 'message' });
        bytes = message;
      } else if (piece === '@TEXT@') {
        spans.push({ start: length, kind: 'text' });
        bytes = text;
      } else if (piece === '@HEAD@') {
        spans.push({ start: length, kind: 'head' });
        bytes = head;
      } else bytes = Buffer.from(piece, 'latin1');
      parts.push(bytes);
      length += bytes.length;
    }
    return { input: Buffer.concat(parts), spans };
  }

  for (const transcript of fixtures.cases) {
    it(`${transcript.name}: recrypts exactly the body literals, in any chunking`, async () => {
      const { input, spans } = fill(transcript.upstream);
      for (const chunks of [[input.length], [1], [7, 13, 400], [4096]]) {
        const device = user.devices[0]!;
        const { output, events } = await rewrite(
          input,
          { transform: recryptTransform(device.keys) },
          chunks,
        );
        expect(output.length).toBe(input.length);
        expect(events.map((e) => e.result)).toEqual(transcript.expect.map(() => 'recrypted'));
        let cursor = 0;
        for (const span of spans.filter((s) => s.kind !== 'head')) {
          const length = span.kind === 'message' ? message.length : text.length;
          // Outside the body literals, not one byte changed.
          expect(
            output.subarray(cursor, span.start).equals(input.subarray(cursor, span.start)),
          ).toBe(true);
          const body = output.subarray(span.start, span.start + length);
          expect(body.equals(input.subarray(span.start, span.start + length))).toBe(false);
          const whole = span.kind === 'message' ? body : Buffer.concat([head, body]);
          if (chunks[0] === input.length)
            expect((await decryptWith(whole, device)).equals(original)).toBe(true);
          cursor = span.start + length;
        }
        expect(output.subarray(cursor).equals(input.subarray(cursor))).toBe(true);
      }
    });
  }

  it('read into one buffer that is overwritten once the rewriter lets go of it (as the relay reads): the same bytes', async () => {
    const device = user.devices[0]!;
    for (const transcript of fixtures.cases) {
      const { input } = fill(transcript.upstream);
      for (const chunks of [[1], [7, 13, 400], [4096], [65536]]) {
        // A second pass over one plan cache: the plans cached by the first are used.
        const cache = new PlanCache();
        for (const pass of [1, 2]) {
          const context = { transform: recryptTransform(device.keys), cache };
          const reused = await rewrite(input, context, chunks, true);
          const fresh = await rewrite(input, { ...context, cache: new PlanCache() }, chunks);
          expect(reused.output.equals(fresh.output), `${transcript.name} ${chunks} ${pass}`).toBe(
            true,
          );
        }
      }
    }
  });

  it('each device decrypts only what was recrypted for it; the group key no longer does', async () => {
    const [one, two] = user.devices as [TestUser['devices'][0], TestUser['devices'][0]];
    const { input, spans } = fill(fixtures.cases[0]!.upstream);
    const start = spans[0]!.start;
    const forOne = (
      await rewrite(input, { transform: recryptTransform(one.keys) })
    ).output.subarray(start, start + message.length);
    const forTwo = (
      await rewrite(input, { transform: recryptTransform(two.keys) })
    ).output.subarray(start, start + message.length);
    expect((await decryptWith(forOne, one)).equals(original)).toBe(true);
    expect((await decryptWith(forTwo, two)).equals(original)).toBe(true);
    await expect(decryptWith(forOne, two)).rejects.toThrow(/failed/);
    await expect(decryptWith(forTwo, one)).rejects.toThrow(/failed/);
    await expect(decryptWith(forOne, user.group)).rejects.toThrow(/failed/);
    expect((await decryptWith(message, user.group)).equals(original)).toBe(true);
  });

  it("Thunderbird's 64 KiB chunks reassemble into a message the device decrypts (plans from the cache)", async () => {
    const big = Buffer.alloc(300_000);
    for (let i = 0; i < big.length; i++) big[i] = 32 + ((i * 7) % 90);
    const bigMessage = await encryptToGroup(big, user.group);
    const device = user.devices[1]!;
    const context = { transform: recryptTransform(device.keys), cache: new PlanCache() };
    const pieces: Buffer[] = [];
    for (let origin = 0; origin < bigMessage.length; origin += 65536) {
      const piece = bigMessage.subarray(origin, origin + 65536);
      const response = Buffer.concat([
        Buffer.from(`* 1 FETCH (UID 42 BODY[]<${origin}> {${piece.length}}\r\n`),
        piece,
        Buffer.from(')\r\nT1 OK done\r\n'),
      ]);
      const { output, events } = await rewrite(response, context, [1000]);
      expect(events[0]?.result).toBe('recrypted');
      const literalStart = response.indexOf('}\r\n') + 3;
      pieces.push(output.subarray(literalStart, literalStart + piece.length));
    }
    const reassembled = Buffer.concat(pieces);
    expect(reassembled.length).toBe(bigMessage.length);
    expect((await decryptWith(reassembled, device)).equals(big)).toBe(true);
  });

  it('past the end of its edits a literal streams without the transform, the same bytes', async () => {
    const device = user.devices[0]!;
    const inner = recryptTransform(device.keys);
    const plan = inner.plan(message, 'message');
    if (plan.kind !== 'edits') throw new Error(`no edits: ${plan.kind}`);
    const editsEnd = Math.max(...plan.edits.map((e) => e.offset + e.bytes.length));
    const applied: number[] = [];
    const counting: BodyTransform = {
      plan: (prefix, form) => inner.plan(prefix, form),
      apply: (chunk, offset, edits) => {
        applied.push(offset);
        return inner.apply(chunk, offset, edits);
      },
    };
    const response = Buffer.concat([
      Buffer.from(`* 1 FETCH (UID 7 BODY[] {${message.length}}\r\n`),
      message,
      Buffer.from(')\r\nT1 OK done\r\n'),
    ]);
    const literalStart = response.indexOf('}\r\n') + 3;
    const cache = new PlanCache();
    // The first fetch plans from the collected prefix; the second takes the cached plan
    // and streams every piece: only those before the end of the edits reach `apply`.
    await rewrite(response, { transform: counting, cache }, [300]);
    applied.length = 0;
    const { output, events } = await rewrite(response, { transform: counting, cache }, [300]);
    expect(events[0]?.result).toBe('recrypted');
    expect(applied.length).toBeGreaterThan(0);
    expect(applied.every((offset) => offset < editsEnd)).toBe(true);
    expect(applied.length).toBeLessThan(message.length / 300 - 1);
    const body = output.subarray(literalStart, literalStart + message.length);
    expect((await decryptWith(body, device)).equals(original)).toBe(true);
  });

  it('a whole literal tries the plan made at delivery before the file of plans, read at most once', async () => {
    const device = user.devices[0]!;
    const delivered = new PointCache(':memory:');
    const made = planRecrypt(message, 'message', device.keys);
    if (made.kind !== 'edits') throw new Error(`no edits: ${made.kind}`);
    delivered.delivered.putPlan(
      'alice',
      'dev-1',
      keysFingerprint(device.keys),
      message,
      made.edits,
    );
    const transform = recryptTransform(
      device.keys,
      undefined,
      delivered.delivered.planSource(device.keys),
    );
    const other = await encryptToGroup(original, user.group);
    const otherPlan = recryptTransform(device.keys).plan(other, 'message');
    if (otherPlan.kind !== 'edits') throw new Error(`no edits: ${otherPlan.kind}`);
    // What the session holds in memory (`peek`), and what only a file read finds (`get`).
    const memory = new Map<number, SettledPlan>();
    const file = new Map<number, SettledPlan>([[8, otherPlan]]);
    const calls: string[] = [];
    const cache: PlanLookup = {
      peek: (key) => (calls.push(`peek ${key.uid}`), memory.get(key.uid)),
      get: (key) => (calls.push(`get ${key.uid}`), memory.get(key.uid) ?? file.get(key.uid)),
      set: (key, plan) => (calls.push(`set ${key.uid}`), memory.set(key.uid, plan)),
    };
    const fetch = (uid: number, bytes: Buffer): Buffer =>
      Buffer.concat([
        Buffer.from(`* ${uid} FETCH (UID ${uid} BODY[] {${bytes.length}}\r\n`),
        bytes,
        Buffer.from(')\r\n'),
      ]);
    const literal = (response: Buffer, output: Buffer): Buffer => {
      const start = response.indexOf('}\r\n') + 3;
      return output.subarray(start, start + response.length - start - 3);
    };
    // The plan made at delivery answers: no file read; it is kept (in memory) for later.
    const first = fetch(7, message);
    const one = await rewrite(first, { transform, cache }, [4096]);
    expect(calls).toEqual(['peek 7', 'set 7']);
    expect(memory.get(7)).toMatchObject({ kind: 'edits', delivered: true });
    expect((await decryptWith(literal(first, one.output), device)).equals(original)).toBe(true);
    // A message with no plan made at delivery: one file read finds it, nothing re-written.
    calls.length = 0;
    const second = fetch(8, other);
    const two = await rewrite(second, { transform, cache }, [4096]);
    expect(calls).toEqual(['peek 8', 'get 8']);
    expect((await decryptWith(literal(second, two.output), device)).equals(original)).toBe(true);
    // In memory now: neither the delivered plan nor the file is consulted.
    calls.length = 0;
    await rewrite(first, { transform, cache }, [4096]);
    expect(calls).toEqual(['peek 7']);
    delivered.close();
  });

  it('a partial past the prefix with no cached plan asks upstream for the prefix by UID', async () => {
    const device = user.devices[0]!;
    const requests: PrefixRequest[] = [];
    const fetchPrefix = async (request: PrefixRequest): Promise<Uint8Array> => {
      requests.push(request);
      return message.subarray(0, request.length);
    };
    const origin = 200;
    const piece = message.subarray(origin);
    const response = Buffer.concat([
      Buffer.from(`* 1 FETCH (UID 5 BODY[]<${origin}> {${piece.length}}\r\n`),
      piece,
      Buffer.from(')\r\n'),
    ]);
    const { output } = await rewrite(response, {
      transform: recryptTransform(device.keys),
      fetchPrefix,
    });
    expect(requests).toEqual([
      expect.objectContaining({ mailbox: 'INBOX', uidValidity: 1, uid: 5 }),
    ]);
    const literalStart = response.indexOf('}\r\n') + 3;
    const whole = Buffer.concat([
      message.subarray(0, origin),
      output.subarray(literalStart, literalStart + piece.length),
    ]);
    // The first 200 bytes are headers only: the edits all fall into the partial.
    expect((await decryptWith(whole, device)).equals(original)).toBe(true);
  });

  describe('a partial whose response names no UID before the literal: by sequence number', () => {
    /** The proxy's output for `* 7 FETCH (BODY[]<origin> {n} …)`, side fetches answered from `side`. */
    async function bySequence(
      origin: number,
      length: number,
      side: Buffer,
    ): Promise<{ literal: Buffer; requests: PrefixRequest[]; events: BodyEvent[] }> {
      const requests: PrefixRequest[] = [];
      const piece = message.subarray(origin, origin + length);
      const response = Buffer.concat([
        Buffer.from(`* 7 FETCH (BODY[]<${origin}> {${piece.length}}\r\n`),
        piece,
        Buffer.from(' UID 9)\r\n'),
      ]);
      const { output, events } = await rewrite(response, {
        transform: recryptTransform(user.devices[0]!.keys),
        fetchPrefix: async (request) => {
          requests.push(request);
          return side.subarray(0, request.length);
        },
      });
      const start = response.indexOf('}\r\n') + 3;
      return { literal: output.subarray(start, start + piece.length), requests, events };
    }

    async function recryptedWhole(): Promise<Buffer> {
      const { output } = await rewrite(
        Buffer.concat([
          Buffer.from(`* 1 FETCH (UID 5 BODY[] {${message.length}}\r\n`),
          message,
          Buffer.from(')\r\n'),
        ]),
        { transform: recryptTransform(user.devices[0]!.keys) },
      );
      const start = output.indexOf('}\r\n') + 3;
      return output.subarray(start, start + message.length);
    }

    it('<0.N> ending inside the prefix: the side answer for sequence 7 matches, so it is recrypted', async () => {
      const { literal, requests } = await bySequence(0, 300, message);
      expect(requests).toEqual([
        expect.objectContaining({ mailbox: 'INBOX', uidValidity: 1, seq: 7 }),
      ]);
      expect(requests[0]!.uid).toBeUndefined();
      expect(literal.equals((await recryptedWhole()).subarray(0, 300))).toBe(true);
    });

    it('<0.N>: a side answer from another message (an expunge between) leaves it unchanged', async () => {
      const other = await encryptToGroup(original, user.group, 'hi');
      const { literal, events } = await bySequence(0, 300, other);
      expect(literal.equals(message.subarray(0, 300))).toBe(true);
      expect(events).toEqual([
        expect.objectContaining({ result: 'unresolved', reason: 'sequence-mismatch' }),
      ]);
    });

    it('<o.N> past 0 with the UID after the literal: recrypted where the bytes match', async () => {
      const { literal } = await bySequence(150, 900, message);
      expect(literal.equals((await recryptedWhole()).subarray(150, 1050))).toBe(true);
    });

    it('<o.N> past 0: bytes of another message on the side connection leave it unchanged', async () => {
      const other = await encryptToGroup(original, user.group, 'hi');
      const { literal, events } = await bySequence(150, 900, other);
      expect(literal.equals(message.subarray(150, 1050))).toBe(true);
      expect(events).toEqual([
        expect.objectContaining({ result: 'unresolved', reason: 'sequence-mismatch' }),
      ]);
    });
  });

  it('BODY.PEEK[]<0.1000> gives recrypted bytes at the right offsets', async () => {
    const device = user.devices[0]!;
    const fetchPrefix = async (request: PrefixRequest): Promise<Uint8Array> =>
      message.subarray(0, request.length);
    const piece = message.subarray(0, 1000);
    const response = Buffer.concat([
      Buffer.from(`* 1 FETCH (UID 5 BODY[]<0> {1000}\r\n`),
      piece,
      Buffer.from(')\r\n'),
    ]);
    const { output } = await rewrite(response, {
      transform: recryptTransform(device.keys),
      fetchPrefix,
    });
    const full = (
      await rewrite(
        Buffer.concat([
          Buffer.from(`* 1 FETCH (UID 5 BODY[] {${message.length}}\r\n`),
          message,
          Buffer.from(')\r\n'),
        ]),
        { transform: recryptTransform(device.keys) },
      )
    ).output;
    const literalStart = response.indexOf('}\r\n') + 3;
    const fullStart = full.indexOf('}\r\n') + 3;
    expect(
      output
        .subarray(literalStart, literalStart + 1000)
        .equals(full.subarray(fullStart, fullStart + 1000)),
    ).toBe(true);
    expect(output.subarray(literalStart, literalStart + 1000).equals(piece)).toBe(false);
  });

  it('an originator point off the curve passes unchanged and is reported, never multiplied', async () => {
    const der = Buffer.from(text.toString('latin1').replace(/\r\n/g, ''), 'base64');
    // The originator point is the 65 bytes after the BIT STRING header 03 42 00 04.
    const at = der.indexOf(Buffer.from([0x03, 0x42, 0x00, 0x04]));
    expect(at).toBeGreaterThan(0);
    const bad = Buffer.from(der);
    bad[at + 3 + 64] = bad[at + 3 + 64]! ^ 1; // flip a bit of y: no longer on P-256
    const lines = bad.toString('base64').match(/.{1,76}/g)!;
    const planted = Buffer.concat([head, Buffer.from(`${lines.join('\r\n')}\r\n`)]);
    const response = Buffer.concat([
      Buffer.from(`* 1 FETCH (UID 5 BODY[] {${planted.length}}\r\n`),
      planted,
      Buffer.from(')\r\n'),
    ]);
    const device = user.devices[0]!;
    const { output, events } = await rewrite(response, {
      transform: recryptTransform(device.keys),
    });
    expect(output.equals(response)).toBe(true);
    expect(events).toEqual([
      expect.objectContaining({ result: 'unchanged', reason: 'invalid-point' }),
    ]);
  });

  it('CAPABILITY lines and [CAPABILITY] codes are filtered; other text lines keep their bytes', async () => {
    const input = Buffer.from(
      '* CAPABILITY IMAP4rev1 SASL-IR LITERAL+ COMPRESS=DEFLATE NOTIFY BINARY CATENATE URLAUTH IDLE MOVE AUTH=PLAIN\r\n' +
        'A1 OK [CAPABILITY IMAP4rev1 IDLE COMPRESS=DEFLATE THREAD=REFS] Logged in\r\n' +
        '* OK [UIDVALIDITY 17] UIDs valid   \r\n',
    );
    const device = user.devices[0]!;
    const { output } = await rewrite(
      input,
      { transform: recryptTransform(device.keys), rewriteTextLine: filterCapabilityLine },
      [5],
    );
    expect(output.toString()).toBe(
      '* CAPABILITY IMAP4rev1 LITERAL+ IDLE MOVE\r\nA1 OK [CAPABILITY IMAP4rev1 IDLE THREAD=REFS] Logged in\r\n* OK [UIDVALIDITY 17] UIDs valid   \r\n',
    );
  });
});
