import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Wire } from './store-imap.js';

/**
 * Scripted IMAP sessions stored as fixture files (test/fixtures/store-imap/transcripts):
 *   C: <command line>   sent; `{?}` / `{?+}` in it become the size of the L: lines' literal
 *   L: <line>           one line of that literal (joined with CRLF; end with an empty L: for a final CRLF)
 *   C+: <line>          sent after the server's next `+` continuation (AUTHENTICATE, IDLE DONE)
 *   S: <line>           an expected reply line; `{*}` matches any run of characters
 * Each command's replies are read up to its tagged reply and compared line by line.
 */
export interface Step {
  command: string;
  literal: string[] | null;
  continuations: string[];
  expected: string[];
  lineNo: number;
}

export function loadTranscript(path: string): Step[] {
  const steps: Step[] = [];
  const lines = readFileSync(path, 'utf8').split('\n');
  lines.forEach((raw, i) => {
    if (raw.startsWith('#') || raw.trim() === '') return;
    const m = /^(C|L|C\+|S): ?(.*)$/.exec(raw);
    if (m === null) throw new Error(`${path}:${i + 1}: unknown line`);
    const [, kind, text] = m as unknown as [string, string, string];
    const last = steps[steps.length - 1];
    if (kind === 'C')
      steps.push({ command: text, literal: null, continuations: [], expected: [], lineNo: i + 1 });
    else if (last === undefined) throw new Error(`${path}:${i + 1}: ${kind} before any C:`);
    else if (kind === 'L') (last.literal ??= []).push(text);
    else if (kind === 'C+') last.continuations.push(text);
    else last.expected.push(text);
  });
  return steps;
}

export function transcriptFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.txt'))
    .sort()
    .map((f) => join(dir, f));
}

function lineMatcher(expected: string): RegExp {
  const parts = expected.split('{*}').map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('.*?')}$`, 's');
}

const CONTINUATION = /^\+[^\r\n]*\r\n/m;

/** Runs one step; returns a list of mismatch descriptions (empty when it matched). */
export async function runStep(
  wire: Wire,
  step: Step,
): Promise<{ received: string[]; problems: string[] }> {
  const tag = step.command.split(' ')[0] as string;
  let command = step.command;
  const literal = step.literal === null ? null : Buffer.from(step.literal.join('\r\n'), 'utf8');
  if (literal !== null) command = command.replace(/\{\?(\+?)\}$/, `{${literal.length}$1}`);
  let received = '';
  wire.send(`${command}\r\n`);
  if (literal !== null) {
    if (!command.endsWith('+}')) received += await wire.until(CONTINUATION);
    wire.send(Buffer.concat([literal, Buffer.from('\r\n')]));
  }
  for (const c of step.continuations) {
    received += await wire.until(CONTINUATION);
    wire.send(`${c}\r\n`);
  }
  received += await wire.until(
    new RegExp(`^${tag.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} (OK|NO|BAD)[^\\r\\n]*\\r\\n`, 'm'),
  );
  const lines = received.split('\r\n');
  lines.pop();
  const problems: string[] = [];
  const n = Math.max(lines.length, step.expected.length);
  for (let i = 0; i < n; i++) {
    const got = lines[i];
    const want = step.expected[i];
    if (got === undefined || want === undefined || !lineMatcher(want).test(got)) {
      problems.push(
        `line ${step.lineNo} (${step.command}) reply ${i + 1}: expected ${JSON.stringify(want)} got ${JSON.stringify(got)}`,
      );
    }
  }
  return { received: lines, problems };
}
