/**
 * The worker's schedule (a heap with stale entries) against a plain model: whatever the
 * sequence of sets, deletes and takes, it hands out exactly the due jobs, earliest first.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { JobSchedule } from '../../src/outbound/schedule.js';

type Op =
  | { kind: 'set'; id: string; at: number }
  | { kind: 'delete'; id: string }
  | { kind: 'take'; now: number; max: number; busy: string[] };

const id = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f');
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), id, at: fc.integer({ min: 0, max: 50 }) }),
  fc.record({ kind: fc.constant('delete' as const), id }),
  fc.record({
    kind: fc.constant('take' as const),
    now: fc.integer({ min: 0, max: 60 }),
    max: fc.integer({ min: 1, max: 4 }),
    busy: fc.uniqueArray(id, { maxLength: 2 }),
  }),
);

describe('JobSchedule', () => {
  it('takes exactly the due, non-busy jobs, earliest first, and knows the next time', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const schedule = new JobSchedule();
        const model = new Map<string, number>();
        for (const step of ops) {
          if (step.kind === 'set') {
            schedule.set(step.id, step.at);
            model.set(step.id, step.at);
          } else if (step.kind === 'delete') {
            schedule.delete(step.id);
            model.delete(step.id);
          } else {
            const busy = (job: string) => step.busy.includes(job);
            const due = [...model]
              .filter(([job, at]) => at <= step.now && !busy(job))
              .sort((x, y) => x[1] - y[1]);
            const taken = schedule.takeDue(step.now, step.max, busy);
            expect(taken).toHaveLength(Math.min(step.max, due.length));
            // Earliest first: the times taken are the smallest due times, in order.
            expect(taken.map((job) => model.get(job))).toEqual(
              due.slice(0, taken.length).map(([, at]) => at),
            );
            // A taken job stays scheduled (in flight) until it is set again or deleted.
            for (const job of taken) expect(schedule.has(job)).toBe(true);
            const waiting = [...model].filter(([job]) => !busy(job) && !taken.includes(job));
            const isBusy = (job: string) => busy(job) || taken.includes(job);
            const expected =
              waiting.length === 0 ? undefined : Math.min(...waiting.map(([, at]) => at));
            expect(schedule.nextTime(isBusy)).toBe(expected);
            // Taken jobs come back as the worker does after an attempt: rescheduled.
            for (const job of taken) {
              schedule.set(job, step.now + 10);
              model.set(job, step.now + 10);
            }
          }
          expect(schedule.size).toBe(model.size);
        }
      }),
      { numRuns: 1000 },
    );
  });
});
