/**
 * Reads the YAML config, applies environment overrides and validates it. Every problem
 * is reported as `file:line: path: what is wrong` (or `environment RECRYPT_…: path: …`
 * for a value an environment variable set), one per line, so an operator sees all of
 * them at once and where they are.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { LineCounter, parseDocument, isMap, isScalar, isSeq, type Document, type Node } from 'yaml';
import { ConfigError } from './errors.js';
import { configSchema, type GatewayConfig } from './schema.js';

export { ConfigError } from './errors.js';

/**
 * Environment variables that override the file: RECRYPT_SMTP__PORT=25 sets smtp.port.
 * Only names whose first segment is a config section count, so the CLI's own variables
 * (RECRYPT_PASSPHRASE, RECRYPT_P12_PASSWORD) share the prefix without being misread.
 */
export const ENV_PREFIX = 'RECRYPT_';
const SECTIONS = new Set(Object.keys(configSchema.shape));

export interface LoadedConfig {
  config: GatewayConfig;
  /** The file it came from, or undefined when only defaults and environment were used. */
  file: string | undefined;
}

export function loadConfig(
  file: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): LoadedConfig {
  let raw: unknown = {};
  let doc: Document | undefined;
  const lines = new LineCounter();
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw new ConfigError([
        `${file}: cannot read: ${(error as NodeJS.ErrnoException).code ?? error}`,
      ]);
    }
    doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
    if (doc.errors.length > 0) {
      throw new ConfigError(
        doc.errors.map(
          (e) => `${file}:${lines.linePos(e.pos[0]).line}: ${e.message.split('\n')[0]}`,
        ),
      );
    }
    raw = doc.toJS() ?? {};
  }
  const overrides = new Map<string, string>();
  raw = applyEnvOverrides(raw, env, overrides);
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.map((issue) => {
        const path = issue.path.map(String);
        // An unknown key is reported at its own line, not its parent's.
        const located =
          issue.code === 'unrecognized_keys' ? [...path, String(issue.keys[0])] : path;
        // A value set by an environment variable is reported by the variable's name: its
        // line in the file (if any) is not where the wrong value came from.
        const variable = overridingVariable(overrides, located);
        const where = doc === undefined ? undefined : lineOf(doc, located, lines);
        const place =
          variable !== undefined
            ? `environment ${variable}`
            : file === undefined
              ? 'config'
              : where === undefined
                ? file
                : `${file}:${where}`;
        const keys =
          issue.code === 'unrecognized_keys'
            ? ` (${issue.keys.map((k) => `'${k}'`).join(', ')})`
            : '';
        return `${place}: ${path.join('.') || '(top level)'}: ${issue.message}${keys}`;
      }),
    );
  }
  const config = result.data;
  const base = file === undefined ? process.cwd() : resolve(file, '..');
  config.dataDir = isAbsolute(config.dataDir) ? config.dataDir : resolve(base, config.dataDir);
  return { config, file };
}

function lineOf(doc: Document, path: string[], lines: LineCounter): number | undefined {
  // Walk as deep as the document goes; a missing key is reported at its parent. A map
  // entry is reported at its key's line (its value may start on the next one).
  let node: Node | null | undefined = doc.contents;
  let line: number | undefined = node?.range ? lines.linePos(node.range[0]).line : undefined;
  for (const key of path) {
    if (isMap(node)) {
      const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === key);
      if (pair === undefined) break;
      const keyRange = (pair.key as Node).range;
      if (keyRange) line = lines.linePos(keyRange[0]).line;
      node = pair.value as Node | null;
    } else if (isSeq(node)) {
      const next = node.get(Number(key), true) as Node | undefined;
      if (next === undefined) break;
      node = next;
      if (node.range) line = lines.linePos(node.range[0]).line;
    } else {
      break;
    }
  }
  return line;
}

/** The variable that set `path` or one of its parents (`a.b` for a problem at `a.b.c`). */
function overridingVariable(overrides: Map<string, string>, path: string[]): string | undefined {
  for (let depth = path.length; depth > 0; depth--) {
    const variable = overrides.get(path.slice(0, depth).join('.'));
    if (variable !== undefined) return variable;
  }
  return undefined;
}

function applyEnvOverrides(
  raw: unknown,
  env: NodeJS.ProcessEnv,
  overrides: Map<string, string>,
): unknown {
  const root: Record<string, unknown> =
    typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? { ...raw } : {};
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || value === undefined) continue;
    const path = name
      .slice(ENV_PREFIX.length)
      .split('__')
      .map((segment) =>
        segment.toLowerCase().replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()),
      );
    if (!SECTIONS.has(path[0]!)) continue;
    overrides.set(path.join('.'), name);
    let target = root;
    for (const [depth, segment] of path.slice(0, -1).entries()) {
      const existing = target[segment];
      // RECRYPT_MAIL_STORE__LMTP_PORT alone must tweak the default store, not make a
      // store with no kind: a section the file lacks starts as its default's kind.
      const seed = depth === 0 ? defaultKindOf(segment) : {};
      const copy: Record<string, unknown> =
        typeof existing === 'object' && existing !== null ? { ...existing } : { ...seed };
      target[segment] = copy;
      target = copy;
    }
    target[path[path.length - 1]!] = parseScalar(value);
  }
  return root;
}

function defaultKindOf(section: string): Record<string, unknown> {
  const value = (configSchema.parse({}) as Record<string, unknown>)[section];
  return typeof value === 'object' && value !== null && 'kind' in value ? { kind: value.kind } : {};
}

/** Environment values are strings; numbers, booleans and JSON lists are what config wants. */
function parseScalar(value: string): unknown {
  if (/^-?\d+$/.test(value)) return Number(value);
  if (value === 'true' || value === 'false') return value === 'true';
  if (value.startsWith('[') || value.startsWith('{')) {
    try {
      return JSON.parse(value) as unknown;
    } catch {
      return value;
    }
  }
  return value;
}
