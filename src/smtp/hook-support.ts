/**
 * The small pieces the MX's smtp-server hooks share: ESMTP parameter and address checks,
 * a timeout around a port call, the header-cap replies, and the one place where a hook's
 * result or error becomes smtp-server's callback (errors become replies in one place).
 */
import { domainToASCII } from 'node:url';
import type { Logger } from 'pino';
import type { SMTPServerAddress } from 'smtp-server';
import type { HeaderLimits, HeaderViolation } from './header-limits.js';
import { SmtpReply, replies } from './reply.js';

/** The ESMTP parameters the MX offers (RFC 1870 SIZE, RFC 6152 BODY, RFC 6531 SMTPUTF8). */
export const MAIL_PARAMETERS = new Set(['SIZE', 'BODY', 'SMTPUTF8']);

/** smtp-server accepts any parameter; RFC 5321 §4.1.1.11 wants 555 for one not offered. */
export function unknownParameter(address: SMTPServerAddress, allowed: Set<string>): boolean {
  return (
    address.args !== false &&
    Object.keys(address.args).some((name) => !allowed.has(name.toUpperCase()))
  );
}

export function headerReply(violation: HeaderViolation, limits: HeaderLimits): SmtpReply {
  if (violation === 'header-bytes') return replies.headerTooBig(limits.maxHeaderBytes);
  if (violation === 'header-lines') return replies.headerTooManyLines(limits.maxHeaderLines);
  return replies.headerFieldTooLong(limits.maxHeaderFieldBytes);
}

export function domainOf(address: string): string | undefined {
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return undefined;
  const ascii = domainToASCII(address.slice(at + 1).toLowerCase());
  return ascii === '' ? undefined : ascii;
}

export async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Turns a hook's async body into smtp-server's callback, with an SmtpReply or a generic 451. */
export function settle(
  promise: Promise<string | undefined>,
  callback: (error?: Error | null, message?: string) => void,
  logger: Logger,
): void {
  promise.then(
    (message) => callback(null, message),
    (error: unknown) => {
      if (error instanceof SmtpReply) {
        callback(error);
        return;
      }
      logger.error(
        { err: { name: (error as Error).name, message: (error as Error).message } },
        'unexpected error; answering 451',
      );
      callback(replies.localError());
    },
  );
}
