/**
 * The cluster bench's CPU accounting (bench/process-cpu.ts): /proc stat lines whose
 * command name holds spaces and parentheses, and a real process group's CPU growing by
 * the work it did (this test's own process, busy on its main thread).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { cpuBetween, groupCpu, parseStat } from '../../bench/process-cpu.js';

describe('bench process CPU', () => {
  it('reads utime, stime and the process group after a command name with ") ("', () => {
    // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
    const line = '4242 (node ) (x) R 1 777 777 0 -1 4194560 10 0 0 0 250 50 0 0 20 0 11';
    expect(parseStat(line)).toEqual({ ms: 3000, pgrp: 777 });
  });

  it('measures the CPU a process of the group spends, on its main thread', () => {
    const { pgrp } = parseStat(readFileSync(`/proc/${process.pid}/stat`, 'utf8'));
    const before = groupCpu(pgrp);
    expect(before.total.has(process.pid)).toBe(true);
    const until = process.cpuUsage().user + 300_000; // 300 ms of user CPU, on this thread
    while (process.cpuUsage().user < until) Math.sqrt(Math.random());
    const after = groupCpu(pgrp);
    const spent = cpuBetween(before, after, process.pid);
    // Ticks are 10 ms. The group is every process of the test run (other Vitest workers
    // too, busy or not), so the busiest main thread need not be this one: this one's own
    // main thread and total are checked by pid.
    const ownLoopMs = after.main.get(process.pid)! - before.main.get(process.pid)!;
    expect(ownLoopMs).toBeGreaterThanOrEqual(250);
    expect(spent.leaderMs).toBeGreaterThanOrEqual(250);
    expect(spent.busiestLoopMs).toBeGreaterThanOrEqual(ownLoopMs);
    expect(spent.totalMs).toBeGreaterThanOrEqual(spent.leaderMs);
    expect(spent.totalMs).toBeGreaterThanOrEqual(spent.busiestLoopMs);
  });
});
