import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  parseAddressList,
  parseMessageStructure,
  partByPath,
  type BodyPart,
} from '../../src/store/mime/index.js';
import { resolveSection } from '../helpers/store-mime-sections.js';

const DIR = join(import.meta.dirname, '../fixtures/store/mime');

interface Expected {
  envelope: Record<string, unknown>;
  parts: Record<string, Record<string, unknown>>;
  sections: Record<string, string>;
  missing: string[];
}

const fixtures = readdirSync(DIR)
  .filter((f) => f.endsWith('.eml'))
  .map((f) => f.slice(0, -4));

function pathOf(spec: string): number[] {
  return spec === '' ? [] : spec.split('.').map(Number);
}

describe.each(fixtures)('fixture %s.eml', (name) => {
  const bytes = readFileSync(join(DIR, `${name}.eml`));
  const expected = JSON.parse(readFileSync(join(DIR, `${name}.expected.json`), 'utf8')) as Expected;
  const structure = parseMessageStructure(bytes);

  it('has the expected envelope', () => {
    expect(structure.size).toBe(bytes.length);
    expect(structure.envelope).toMatchObject(expected.envelope);
  });

  it('has the expected parts', () => {
    for (const [spec, want] of Object.entries(expected.parts)) {
      const part = partByPath(structure, pathOf(spec));
      expect(part, `part ${spec}`).not.toBeNull();
      const p = part as BodyPart;
      const got: Record<string, unknown> = {
        type: `${p.contentType.type}/${p.contentType.subtype}`,
        params: p.contentType.params.map((x) => [x.name, x.value]),
        explicit: p.contentType.explicit,
        encoding: p.encoding,
        lines: p.lines,
        id: p.id,
        description: p.description,
        md5: p.md5,
        disposition: p.disposition,
        language: p.language,
        location: p.location,
        children: p.parts.length,
        innerEnvelope: p.message?.envelope,
      };
      const { innerEnvelope, ...plain } = want;
      expect(got, `part ${spec}`).toMatchObject(plain);
      if (innerEnvelope !== undefined)
        expect(got.innerEnvelope, `part ${spec}`).toMatchObject(innerEnvelope as object);
      expect(p.size).toBe(p.body.end - p.body.start);
    }
  });

  it('resolves every section to the expected bytes', () => {
    for (const [spec, want] of Object.entries(expected.sections)) {
      expect(resolveSection(bytes, structure, spec), `BODY[${spec}]`).toBe(want);
    }
  });

  it('reports missing sections as absent', () => {
    for (const spec of expected.missing)
      expect(resolveSection(bytes, structure, spec), `BODY[${spec}]`).toBeNull();
  });
});

function checkRanges(part: BodyPart, limit: { start: number; end: number }): void {
  expect(part.header.start).toBeGreaterThanOrEqual(limit.start);
  expect(part.header.end).toBeLessThanOrEqual(part.body.start);
  expect(part.body.start).toBeLessThanOrEqual(part.body.end);
  expect(part.body.end).toBeLessThanOrEqual(limit.end);
  for (const child of part.parts) checkRanges(child, part.body);
  if (part.message !== null) checkRanges(part.message.root, part.body);
}

describe('address lists', () => {
  const { cases } = JSON.parse(readFileSync(join(DIR, 'addresses.json'), 'utf8')) as {
    cases: Array<[string, unknown]>;
  };
  it.each(cases)('%j', (input, expected) => {
    expect(parseAddressList(input)).toEqual(expected);
  });
});

describe('robustness', () => {
  const samples = fixtures.map((n) => readFileSync(join(DIR, `${n}.eml`)));

  it('never throws and keeps every range inside its parent, on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => {
        const s = parseMessageStructure(bytes);
        checkRanges(s.root, { start: 0, end: bytes.length });
        expect(JSON.parse(JSON.stringify(s))).toEqual(s);
      }),
      { numRuns: 500 },
    );
  });

  it('never throws on mutated and truncated fixtures', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...samples),
        fc.nat(),
        fc.array(
          fc.tuple(fc.nat(), fc.constantFrom(0x0a, 0x0d, 0x2d, 0x3a, 0x3b, 0x22, 0x28, 0x3c, 0x40)),
        ),
        (sample, cut, edits) => {
          const bytes = Buffer.from(sample.subarray(0, cut % (sample.length + 1)));
          for (const [at, value] of edits) if (bytes.length > 0) bytes[at % bytes.length] = value;
          const s = parseMessageStructure(bytes);
          checkRanges(s.root, { start: 0, end: bytes.length });
          for (let i = 1; i < 4; i++) partByPath(s, [i, 1]);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('survives deep nesting without overflowing the stack', () => {
    let msg = '';
    for (let i = 0; i < 5000; i++)
      msg += `Content-Type: multipart/mixed; boundary=b${i}\r\n\r\n--b${i}\r\n`;
    const s = parseMessageStructure(Buffer.from(msg));
    checkRanges(s.root, { start: 0, end: msg.length });
  });
});
