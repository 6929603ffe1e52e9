/**
 * CPU time of a process group (Linux /proc): each process's total (every thread, so the
 * encryption worker threads count) and its main thread's, the event loop's. Used where wall
 * time on a shared machine says little: the work a path costs, and which single thread
 * bounds it, are measured in CPU time, which other load on the machine barely changes.
 */
import { readFileSync, readdirSync } from 'node:fs';

/** Kernel clock ticks per second (`getconf CLK_TCK`; 100 on Linux for x86 and arm). */
const TICKS_PER_SECOND = 100;

export interface GroupCpu {
  /** Milliseconds of CPU per process id: all its threads. */
  total: Map<number, number>;
  /** Milliseconds of CPU per process id: its main thread (the event loop). */
  main: Map<number, number>;
}

/** utime + stime of a /proc stat line, in ms, and its process group. */
export function parseStat(text: string): { ms: number; pgrp: number } {
  // The command name, field 2, may hold spaces and parentheses: fields follow the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return { ms: (ticks * 1000) / TICKS_PER_SECOND, pgrp: Number(fields[2]) };
}

export function groupCpu(pgid: number): GroupCpu {
  const total = new Map<number, number>();
  const main = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = parseStat(readFileSync(`/proc/${name}/stat`, 'utf8'));
      if (stat.pgrp !== pgid) continue;
      total.set(Number(name), stat.ms);
      main.set(Number(name), parseStat(readFileSync(`/proc/${name}/task/${name}/stat`, 'utf8')).ms);
    } catch {
      // the process exited while we looked
    }
  }
  return { total, main };
}

/** CPU spent between two snapshots: the group's sum, the busiest event loop's, and `leader`'s (all its threads). */
export function cpuBetween(
  before: GroupCpu,
  after: GroupCpu,
  leader: number,
): { totalMs: number; busiestLoopMs: number; leaderMs: number } {
  const leaderMs = (after.total.get(leader) ?? 0) - (before.total.get(leader) ?? 0);
  let totalMs = 0;
  let busiestLoopMs = 0;
  for (const [pid, ms] of after.total) totalMs += ms - (before.total.get(pid) ?? 0);
  for (const [pid, ms] of after.main)
    busiestLoopMs = Math.max(busiestLoopMs, ms - (before.main.get(pid) ?? 0));
  return { totalMs, busiestLoopMs, leaderMs };
}
