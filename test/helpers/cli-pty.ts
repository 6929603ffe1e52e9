/**
 * Runs the real CLI on a pseudo-terminal (Python's pty module: Node has none), answering
 * each prompt it shows with the next of `answers`, so the no-echo prompt path is tested
 * as a person meets it. Returns everything the terminal showed and the exit code.
 */
import { spawn } from 'node:child_process';
import { requireBinary } from './binaries.js';
import { cliCommand } from './cli-command.js';

const DRIVER = `
import os, pty, sys, select
answers = [a for a in os.environ.pop('PTY_ANSWERS').split('\\n')]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
seen = b''
pending = b''
while True:
    ready, _, _ = select.select([fd], [], [], 30)
    if not ready:
        break
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    seen += chunk
    pending += chunk
    if pending.rstrip().endswith(b':') and answers:
        os.write(fd, answers.pop(0).encode() + b'\\r')
        pending = b''
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(seen)
sys.exit(os.waitstatus_to_exitcode(status))
`;

export function runCliOnTty(
  args: string[],
  answers: string[],
  options: { cwd: string },
): Promise<{ code: number | null; output: string }> {
  const python = requireBinary('python3');
  const env: Record<string, string> = { PTY_ANSWERS: answers.join('\n'), TERM: 'dumb' };
  for (const name of ['PATH', 'HOME', 'TMPDIR']) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  const command = cliCommand();
  return new Promise((resolve, reject) => {
    const child = spawn(python, ['-c', DRIVER, ...command, ...args], {
      cwd: options.cwd,
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}
