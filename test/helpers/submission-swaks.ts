/**
 * swaks against a gateway's SMTP port on loopback, as the submission tests use it:
 * STARTTLS and AUTH PLAIN with a device's credential unless told otherwise. One place
 * for the argument list, the timeouts and what a failed transaction gives back (its
 * transcript and exit code: most tests read the refusal from the transcript).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface SwaksTarget {
  port: number;
  /** STARTTLS (default true): the submission port requires it before AUTH. */
  tls?: boolean;
  /** Signs in with AUTH PLAIN as this user (a device's address and password). */
  user?: { address: string; password: string };
  /** swaks' own per-step timeout (default 60 s); the process gets twice as long. */
  timeoutSeconds?: number;
}

export interface SwaksResult {
  /** swaks' exit code: 0 when the whole transaction was accepted. */
  code: number;
  stdout: string;
  /** stdout then stderr: the whole transcript, as a person would see it. */
  out: string;
}

/** The AUTH PLAIN options for `user`. */
export function swaksAuth(user: { address: string; password: string }): string[] {
  return ['--auth', 'PLAIN', '--auth-user', user.address, '--auth-password', user.password];
}

/** Runs one swaks transaction; resolves also when swaks fails (see `code`). */
export async function swaks(target: SwaksTarget, args: string[]): Promise<SwaksResult> {
  const seconds = target.timeoutSeconds ?? 60;
  const argv = [
    '--server',
    '127.0.0.1',
    '--port',
    String(target.port),
    ...(target.tls === false ? [] : ['--tls']),
    ...(target.user === undefined ? [] : swaksAuth(target.user)),
    '--timeout',
    String(seconds),
    ...args,
  ];
  try {
    const { stdout, stderr } = await run('swaks', argv, { timeout: seconds * 2000 });
    return { code: 0, stdout, out: stdout + stderr };
  } catch (error) {
    const failed = error as { code?: unknown; stdout?: string; stderr?: string };
    // Not swaks' answer (it could not be started, or was killed): the test must not read
    // it as a refusal.
    if (typeof failed.code !== 'number') throw error;
    const stdout = failed.stdout ?? '';
    return { code: failed.code, stdout, out: stdout + (failed.stderr ?? '') };
  }
}

/** The same for a transaction that must be accepted: its stdout, else an error with the transcript. */
export async function swaksAccepted(target: SwaksTarget, args: string[]): Promise<string> {
  const result = await swaks(target, args);
  if (result.code !== 0) throw new Error(`swaks exited with ${result.code}:\n${result.out}`);
  return result.stdout;
}
