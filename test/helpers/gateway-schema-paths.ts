/**
 * Every option (leaf) path of the config schema (`smtp.port`, `keyStore.nodes[].host`, …),
 * found by walking the zod schema itself, so docs and deployment files are checked
 * against the code rather than against a list someone keeps by hand.
 */
import type { z } from 'zod';
import { configSchema } from '../../src/config/schema.js';

interface Def {
  type: string;
  innerType?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  options?: z.ZodType[];
  element?: z.ZodType;
}

const defOf = (schema: z.ZodType): Def => (schema as unknown as { _zod: { def: Def } })._zod.def;

function unwrap(schema: z.ZodType): Def {
  const def = defOf(schema);
  return def.innerType !== undefined ? unwrap(def.innerType) : def;
}

function walk(schema: z.ZodType, prefix: string, out: Set<string>): void {
  const def = defOf(schema);
  if (def.innerType !== undefined) return walk(def.innerType, prefix, out);
  if (def.type === 'object') {
    for (const [key, child] of Object.entries(def.shape!)) {
      const path = prefix === '' ? key : `${prefix}.${key}`;
      // Sections (objects, and unions of objects) are not options themselves.
      const kind = unwrap(child).type;
      if (kind !== 'object' && kind !== 'union') out.add(path);
      walk(child, path, out);
    }
  } else if (def.type === 'union') {
    for (const option of def.options!) walk(option, prefix, out);
  } else if (def.type === 'array') {
    walk(def.element!, `${prefix}[]`, out);
  }
}

export function schemaPaths(): string[] {
  const out = new Set<string>();
  walk(configSchema as unknown as z.ZodType, '', out);
  return [...out];
}

/** The environment variable that overrides a path (src/config/load.ts's rule, inverted). */
export function envName(path: string): string {
  return (
    'RECRYPT_' +
    path
      .split('.')
      .map((segment) => segment.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase())
      .join('__')
  );
}
