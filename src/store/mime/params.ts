import type { ContentType, Disposition, HeaderParam } from './types.js';

/**
 * RFC 2045 `value *(";" attribute "=" value)` parsing that keeps parameters raw.
 * libmime.parseHeaderValue is not used because it lower-cases names and decodes
 * RFC 2231 continuations, while IMAP BODYSTRUCTURE wants them as written.
 */

/** Removes RFC 5322 comments `( … )` outside quoted strings, keeping quoted strings intact. */
export function stripComments(input: string): string {
  let out = '';
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < input.length; i++) {
    const ch = input[i] as string;
    if (quoted) {
      out += ch;
      if (ch === '\\' && i + 1 < input.length) out += input[++i];
      else if (ch === '"') quoted = false;
    } else if (depth > 0) {
      if (ch === '\\') i++;
      else if (ch === '(') depth++;
      else if (ch === ')') depth--;
    } else if (ch === '"') {
      quoted = true;
      out += ch;
    } else if (ch === '(') {
      depth = 1;
      out += ' ';
    } else {
      out += ch;
    }
  }
  return out;
}

function unquote(value: string): string {
  const v = value.trim();
  if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) {
    return v.slice(1, -1).replace(/\\(.)/g, '$1');
  }
  if (v.startsWith('"')) return v.slice(1).replace(/\\(.)/g, '$1');
  return v;
}

/** Splits on `;` outside quoted strings. */
function splitSemicolons(input: string): string[] {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < input.length; i++) {
    const ch = input[i] as string;
    if (quoted) {
      current += ch;
      if (ch === '\\' && i + 1 < input.length) current += input[++i];
      else if (ch === '"') quoted = false;
    } else if (ch === '"') {
      quoted = true;
      current += ch;
    } else if (ch === ';') {
      parts.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  parts.push(current);
  return parts;
}

/** Parses `value; a=b; c="d"` into the leading value (trimmed) and its parameters. */
export function parseValueWithParams(raw: string): { value: string; params: HeaderParam[] } {
  const [head = '', ...rest] = splitSemicolons(stripComments(raw));
  const params: HeaderParam[] = [];
  for (const piece of rest) {
    const eq = piece.indexOf('=');
    if (eq === -1) continue;
    const name = piece.slice(0, eq).trim();
    if (name.length === 0 || /[\s"]/.test(name)) continue;
    params.push({ name, value: unquote(piece.slice(eq + 1)) });
  }
  return { value: head.trim(), params };
}

const TOKEN = /^[!#$%&'*+\-.^_`{|}~0-9A-Za-z]+$/;

/**
 * Content-Type with RFC 2045 defaults: missing or unparsable → `defaultType`
 * (text/plain; charset=us-ascii, or message/rfc822 inside multipart/digest).
 */
export function parseContentType(
  raw: string | null,
  defaultType: 'text/plain' | 'message/rfc822',
): ContentType {
  const fallback = (): ContentType =>
    defaultType === 'text/plain'
      ? {
          type: 'text',
          subtype: 'plain',
          params: [{ name: 'charset', value: 'us-ascii' }],
          explicit: false,
        }
      : { type: 'message', subtype: 'rfc822', params: [], explicit: false };
  if (raw === null) return fallback();
  const { value, params } = parseValueWithParams(raw);
  const slash = value.indexOf('/');
  if (slash === -1)
    return { ...fallback(), params: params.length > 0 ? params : fallback().params };
  const type = value.slice(0, slash).trim().toLowerCase();
  const subtype = value
    .slice(slash + 1)
    .trim()
    .toLowerCase();
  if (!TOKEN.test(type) || !TOKEN.test(subtype)) return fallback();
  return { type, subtype, params, explicit: true };
}

export function parseDisposition(raw: string | null): Disposition | null {
  if (raw === null) return null;
  const { value, params } = parseValueWithParams(raw);
  if (value.length === 0) return null;
  return { type: value.toLowerCase(), params };
}

export function paramValue(params: HeaderParam[], name: string): string | null {
  const key = name.toLowerCase();
  return params.find((p) => p.name.toLowerCase() === key)?.value ?? null;
}

/** Content-Language: comma-separated tags, comments removed. */
export function parseLanguage(raw: string | null): string[] | null {
  if (raw === null) return null;
  const tags = stripComments(raw)
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t.length > 0);
  return tags.length > 0 ? tags : null;
}
