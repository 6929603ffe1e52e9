/**
 * Vitest global set-up: says how a test process ended when Vitest did not end it. Vitest
 * reports a test process that died as "Worker exited unexpectedly" with neither its exit
 * code nor the signal, so a native crash (SIGSEGV, SIGABRT), a kill from outside (SIGKILL,
 * the kernel's out-of-memory killer) and an exit look the same in a CI log. This prints one
 * line to stderr with the process id and how it ended.
 *
 * Vitest starts its test processes with child_process.fork (pool 'forks') from this, its
 * main process; the wrapper below only watches each child's 'exit' event. Vitest ends them
 * with SIGTERM (or they exit with 0 once stopped): those are not reported. A SIGKILL
 * after a process ignored SIGTERM for 500 ms is reported too.
 */
import childProcess, { type ChildProcess } from 'node:child_process';
import { syncBuiltinESMExports } from 'node:module';

export default function setup(): () => void {
  const fork = childProcess.fork;
  childProcess.fork = function (this: unknown, ...args: Parameters<typeof fork>): ChildProcess {
    const child = fork.apply(this, args);
    child.once('exit', (code, signal) => {
      if (code === 0 || signal === 'SIGTERM') return;
      const how = signal === null ? `exit code ${code}` : `signal ${signal}`;
      process.stderr.write(`[test processes] pid ${child.pid} ended by ${how}\n`);
    });
    return child;
  } as typeof fork;
  // Vitest imports fork by name: its binding follows the module's property only after this.
  syncBuiltinESMExports();
  return () => {
    childProcess.fork = fork;
    syncBuiltinESMExports();
  };
}
