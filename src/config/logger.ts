/**
 * The gateway's one logger: pino, JSON lines on stdout, each part a child with its own
 * `part` field and each connection a child with a session id. Fields that could carry a
 * secret are redacted here as a second line of defence; the first is never to log
 * them (no passwords, tokens, keys, message bodies or subjects).
 */
import { pino, type Logger } from 'pino';

export const REDACTED_FIELDS = [
  'password',
  '*.password',
  'token',
  '*.token',
  'adminToken',
  'rk',
  '*.rk',
  'secret',
  '*.secret',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  'subject',
  '*.subject',
];

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { service: 'recrypt-gateway' },
      redact: { paths: REDACTED_FIELDS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination as pino.DestinationStream | undefined,
  );
}

export type { Logger };
