import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMaildirStore } from '../../src/store/maildir/index.js';
import {
  parseMessageStructure,
  type Address,
  type BodyPart,
  type Envelope,
} from '../../src/store/mime/index.js';
import { requireBinary } from '../helpers/binaries.js';
import { startDovecot, type Dovecot } from '../helpers/dovecot.js';
import { fetchItem, type Sexp } from '../helpers/store-mime-sexp.js';
import { resolveSection } from '../helpers/store-mime-sections.js';

/**
 * The MIME parser against the reference: every fixture is stored in a Maildir that a real
 * Dovecot then serves; each BODY[section] Dovecot returns must equal the bytes our tree
 * points at, and Dovecot's BODYSTRUCTURE must agree with our parts on type, size, lines,
 * encoding and the other fields (after the defaults IMAP rendering adds).
 */

const DIR = join(import.meta.dirname, '../fixtures/store/mime');
const USER = 'mime@example.com';
const FETCH_SCRIPT = join(import.meta.dirname, '../helpers/store-mime-fetch.py');
const python = requireBinary('python3');
const run = promisify(execFile);
// Dovecot turns bare LF into CRLF when it serves a message, so a bare-LF fixture cannot be
// compared byte for byte: broken-crlf.eml covers the same broken MIME with CRLF.
const BARE_LF = new Set(['broken']);
const fixtures = readdirSync(DIR)
  .filter((f) => f.endsWith('.eml'))
  .map((f) => f.slice(0, -4))
  .filter((f) => !BARE_LF.has(f));

let dovecot: Dovecot;
const uidOf = new Map<string, number>();

beforeAll(async () => {
  // On tmpfs where there is room: what is compared is the parse, not durability.
  dovecot = await startDovecot({ inMemory: true });
  const store = await createMaildirStore({ root: dovecot.mailDir });
  try {
    await store.createUser(USER);
    for (const name of fixtures) {
      const { uid } = await store.deliver(USER, readFileSync(join(DIR, `${name}.eml`)));
      uidOf.set(name, uid);
    }
  } finally {
    await store.close();
  }
  execFileSync('chown', ['-R', 'vmail:vmail', join(dovecot.mailDir, USER)]);
});

afterAll(async () => {
  await dovecot?.remove();
});

/** The string form of a parameter list as Dovecot sends it: [name, value, …] or null. */
function paramList(params: Array<{ name: string; value: string }>): Sexp {
  return params.length === 0 ? null : params.flatMap((p) => [p.name, p.value]);
}

/** Our envelope in the form of Dovecot's ENVELOPE value (NIL for an empty address list). */
function envelopeSexp(e: Envelope): Sexp {
  const list = (a: Address[]): Sexp =>
    a.length === 0 ? null : a.map((x) => [x.name, x.adl, x.mailbox, x.host]);
  return [
    e.date,
    e.subject,
    list(e.from),
    list(e.sender),
    list(e.replyTo),
    list(e.to),
    list(e.cc),
    list(e.bcc),
    e.inReplyTo,
    e.messageId,
  ];
}

function lowerList(x: Sexp): Sexp {
  return Array.isArray(x) ? x.map((v) => (typeof v === 'string' ? v.toLowerCase() : v)) : x;
}

/**
 * Compares Dovecot's raw BODYSTRUCTURE node with our part, value by value. What differs
 * only in rendering (the defaults an IMAP server prints for absent fields) is applied to
 * ours here, and is what the IMAP layer must print to look like Dovecot:
 * - text/* without a charset parameter: ("charset" "us-ascii") appended to the list;
 * - no Content-Transfer-Encoding: "7bit";
 * - no parameters: NIL; type, subtype and parameters compared case-insensitively.
 */
function compareRaw(node: Sexp, part: BodyPart, where: string): void {
  expect(Array.isArray(node), `part ${where} is a list`).toBe(true);
  const n = node as Sexp[];
  const ct = part.contentType;
  if (Array.isArray(n[0])) {
    const subtypeAt = n.findIndex((x) => typeof x === 'string');
    expect(ct.type, `part ${where}`).toBe('multipart');
    expect(String(n[subtypeAt]).toLowerCase(), `subtype of ${where}`).toBe(ct.subtype);
    expect(n[subtypeAt + 1], `params of ${where}`).toEqual(paramList(ct.params));
    expect(subtypeAt, `children of ${where}`).toBe(part.parts.length);
    for (let i = 0; i < subtypeAt; i++)
      compareRaw(n[i] as Sexp, part.parts[i] as BodyPart, `${where}.${i + 1}`);
    return;
  }
  const params = [...ct.params];
  if (ct.type === 'text' && !params.some((p) => p.name.toLowerCase() === 'charset')) {
    params.push({ name: 'charset', value: 'us-ascii' });
  }
  expect(String(n[0]).toLowerCase(), `type of ${where}`).toBe(ct.type);
  expect(String(n[1]).toLowerCase(), `subtype of ${where}`).toBe(ct.subtype);
  // case-insensitive: Dovecot itself sends ("CHARSET" "US-ASCII") as written on a first
  // fetch but ("charset" "us-ascii") once it serves the structure from its cache
  expect(lowerList(n[2] ?? null), `params of ${where}`).toEqual(lowerList(paramList(params)));
  expect([n[3], n[4]], `id, description of ${where}`).toEqual([part.id, part.description]);
  expect(String(n[5]).toLowerCase(), `encoding of ${where}`).toBe(
    (part.encoding ?? '7bit').toLowerCase(),
  );
  expect(Number(n[6]), `size of ${where}`).toBe(part.size);
  let at = 7;
  if (part.message !== null) {
    expect(n[7], `envelope of ${where}`).toEqual(envelopeSexp(part.message.envelope));
    compareRaw(n[8] as Sexp, part.message.root, `${where} (inner)`);
    expect(Number(n[9]), `lines of ${where}`).toBe(part.lines);
    at = 10;
  } else if (ct.type === 'text') {
    expect(Number(n[7]), `lines of ${where}`).toBe(part.lines);
    at = 8;
  }
  expect(n[at], `md5 of ${where}`).toBe(part.md5);
  const disposition =
    part.disposition === null ? null : [part.disposition.type, paramList(part.disposition.params)];
  expect(n[at + 1], `disposition of ${where}`).toEqual(disposition);
  const language =
    part.language === null ? null : part.language.length === 1 ? part.language[0] : part.language;
  expect(n[at + 2], `language of ${where}`).toEqual(language);
  expect(n[at + 3], `location of ${where}`).toBe(part.location);
}

describe.each(fixtures)('Dovecot agrees on %s.eml', (name) => {
  const bytes = readFileSync(join(DIR, `${name}.eml`));
  const expected = JSON.parse(readFileSync(join(DIR, `${name}.expected.json`), 'utf8')) as {
    sections: Record<string, string>;
    missing: string[];
  };
  const ours = parseMessageStructure(bytes);

  it('returns the same bytes for every section (fetched raw with Python imaplib)', async () => {
    const specs = [...Object.keys(expected.sections), ...expected.missing, 'HEADER', 'TEXT', ''];
    const { stdout } = await run(python, [
      FETCH_SCRIPT,
      String(dovecot.imapPort),
      dovecot.masterUser,
      dovecot.masterPassword,
      USER,
      String(uidOf.get(name)),
      ...specs,
    ]);
    const theirs = JSON.parse(stdout) as Record<string, string | null>;
    for (const spec of specs) {
      const got = theirs[spec];
      const mine = resolveSection(bytes, ours, spec);
      // Dovecot answers a part that does not exist with an empty string
      expect(
        got === null || got === undefined ? '' : Buffer.from(got, 'base64').toString('utf8'),
        `BODY[${spec}]`,
      ).toBe(mine ?? '');
    }
  });

  it('has the same BODYSTRUCTURE and ENVELOPE (raw, value by value)', async () => {
    const { stdout } = await run(python, [
      FETCH_SCRIPT,
      String(dovecot.imapPort),
      dovecot.masterUser,
      dovecot.masterPassword,
      USER,
      String(uidOf.get(name)),
    ]);
    const raw = JSON.parse(stdout) as { BODYSTRUCTURE: string; ENVELOPE: string };
    const node = fetchItem(raw.BODYSTRUCTURE, 'BODYSTRUCTURE');
    expect(node, raw.BODYSTRUCTURE).toBeDefined();
    compareRaw(node as Sexp, ours.root, '(root)');
    expect(fetchItem(raw.ENVELOPE, 'ENVELOPE'), 'ENVELOPE').toEqual(envelopeSexp(ours.envelope));
  });
});
