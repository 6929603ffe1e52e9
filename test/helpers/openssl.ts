import { spawn } from 'node:child_process';
import { requireBinary } from './binaries.js';

/** Runs the real `openssl` with `input` on stdin; resolves stdout, rejects with stderr. */
export function runOpenssl(args: string[], input: Uint8Array): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(requireBinary('openssl'), args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out));
      else
        reject(
          new Error(
            `openssl ${args.slice(0, 2).join(' ')} failed (${code}): ${Buffer.concat(err).toString().slice(0, 300)}`,
          ),
        );
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}
