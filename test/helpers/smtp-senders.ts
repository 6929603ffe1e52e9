/**
 * Senders for the MX tests, none written here: nodemailer (raw messages, exact bytes) and
 * swaks. Both use STARTTLS when the MX offers it. They report the server's final reply.
 */
import { spawn } from 'node:child_process';
import nodemailer from 'nodemailer';
import { requireBinary } from './binaries.js';

export interface SendResult {
  ok: boolean;
  /** The final reply line (or the error's response), e.g. "250 2.6.0 OK: ...". */
  response: string;
  code?: number;
}

export async function sendWithNodemailer(
  port: number,
  envelope: { from: string; to: string[] },
  raw: Buffer,
  options: { tls?: boolean } = {},
): Promise<SendResult> {
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port,
    secure: false,
    ignoreTLS: options.tls === false,
    requireTLS: options.tls !== false,
    tls: { rejectUnauthorized: false },
    connectionTimeout: 30_000,
    greetingTimeout: 30_000,
    socketTimeout: 60_000,
  });
  try {
    const info = await transport.sendMail({ envelope, raw });
    return { ok: true, response: info.response, code: Number(info.response.slice(0, 3)) };
  } catch (error) {
    const { response, responseCode, message } = error as {
      response?: string;
      responseCode?: number;
      message: string;
    };
    return {
      ok: false,
      response: response ?? message,
      ...(responseCode !== undefined ? { code: responseCode } : {}),
    };
  } finally {
    transport.close();
  }
}

/** Runs swaks with the message on stdin; resolves with its transcript and exit code. */
export function swaks(
  args: string[],
  data?: Buffer,
): Promise<{ code: number; transcript: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      requireBinary('swaks'),
      [...args, ...(data !== undefined ? ['--data', '-'] : [])],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    const out: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => out.push(chunk));
    child.on('error', reject);
    child.on('close', (code) =>
      resolve({ code: code ?? -1, transcript: Buffer.concat(out).toString('utf8') }),
    );
    child.stdin.on('error', () => undefined);
    child.stdin.end(data ?? Buffer.alloc(0));
  });
}

/** The server's reply lines (`<-`, `<~` under TLS, `<**`/`<~*` for errors) from a swaks transcript. */
export function swaksReplies(transcript: string): string[] {
  return transcript
    .split('\n')
    .filter((line) => /^\s*<[-~*]+ /.test(line))
    .map((line) => line.replace(/^\s*<[-~*]+\s*/, '').trim());
}
