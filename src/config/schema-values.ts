/** The value types the configuration's sections share (ports, host names, durations). */
import { z } from 'zod';

export const port = z.number().int().min(1).max(65535);
export const host = z.string().min(1);

/** A time span: milliseconds, or a number with a unit (`500ms`, `30s`, `5m`, `1h`, `2d`). */
const DURATION_UNITS_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
export const duration = z
  .union([
    z.number().int().nonnegative(),
    z.string().regex(/^\d+(ms|s|m|h|d)$/, 'a duration: milliseconds, or e.g. 30s, 5m, 1h, 2d'),
  ])
  .transform((value) => {
    if (typeof value === 'number') return value;
    const [, amount, unit] = /^(\d+)(ms|s|m|h|d)$/.exec(value)!;
    return Number(amount) * DURATION_UNITS_MS[unit as keyof typeof DURATION_UNITS_MS];
  });

/** "host:port" or "[v6]:port", a fixed next hop for one domain. */
export const hostAndPort = z
  .string()
  .regex(/^(\[[0-9A-Fa-f:.]+\]|[^\s:[\]]+):\d{1,5}$/, 'host:port, or [IPv6]:port');
