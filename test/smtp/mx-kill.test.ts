/**
 * "Lose nothing": the MX process is killed with SIGKILL in the middle of a
 * concurrent load of nodemailer sends; senders retry what was not acknowledged against
 * the restarted MX. Afterwards every Message-ID that got a 250 is in the store (the
 * store's copy is counted by Message-ID; duplicates of unacknowledged attempts are allowed).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/ports.js';
import {
  type Harness,
  LOCAL_DOMAIN,
  fixtureMessage,
  startHarness,
} from '../helpers/smtp-harness.js';
import { headerBlock, storedMessages } from '../helpers/smtp-readback.js';
import { sendWithNodemailer } from '../helpers/smtp-senders.js';

const MESSAGES = 500; // a 500-message concurrent load
const CONCURRENCY = 12;
const KILL_AFTER_ACKS = 150;
const childScript = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  'helpers',
  'smtp-mx-child.ts',
);

let harness: Harness;
let child: ChildProcess | undefined;
let port: number;

async function startChild(): Promise<void> {
  const process_ = spawn(process.execPath, ['--import', 'tsx', childScript], {
    env: {
      ...process.env,
      MX_CHILD: JSON.stringify({
        port,
        lmtpPort: harness.dovecot.lmtpPort,
        redisPort: harness.redis.port,
        dir: harness.dir,
        localDomain: LOCAL_DOMAIN,
      }),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child = process_;
  let errors = '';
  process_.stderr!.on('data', (chunk: Buffer) => {
    errors += chunk.toString();
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`MX child not ready: ${errors}`)), 30_000);
    process_.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('READY')) {
        clearTimeout(timer);
        resolve();
      }
    });
    process_.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`MX child exited (${code}): ${errors}`));
    });
  });
}

async function killChild(signal: NodeJS.Signals): Promise<void> {
  const process_ = child;
  child = undefined;
  if (process_ === undefined || process_.exitCode !== null || process_.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => process_.once('exit', () => resolve()));
  process_.kill(signal);
  await exited;
}

beforeAll(async () => {
  // Dovecot on tmpfs where there is room: what is killed is the MX, never Dovecot, and
  // its fsync of every delivery on the shared disk set the pace of the load.
  harness = await startHarness({}, { inMemory: true });
  port = await freePort();
  await startChild();
});

afterAll(async () => {
  await killChild('SIGKILL');
  await harness?.stop();
});

describe('MX killed with SIGKILL under load', () => {
  it(`every message acknowledged with 250 is in the store (${MESSAGES} messages, ${CONCURRENCY} concurrent senders)`, async () => {
    const run = randomBytes(4).toString('hex');
    const pending = Array.from({ length: MESSAGES }, (_, i) => `load.${run}.${i}@sender.example`);
    const acked = new Set<string>();
    let killed = false;
    let restarting: Promise<void> | undefined;
    let failures = 0;

    const worker = async (): Promise<void> => {
      for (;;) {
        const messageId = pending.shift();
        if (messageId === undefined) return;
        if (restarting !== undefined) await restarting;
        const result = await sendWithNodemailer(
          port,
          { from: 'someone@sender.example', to: [`alice@${LOCAL_DOMAIN}`] },
          fixtureMessage('plain.eml', 'load', messageId),
          { tls: false },
        );
        if (result.ok && /^250 /.test(result.response)) {
          acked.add(messageId);
          if (!killed && acked.size >= KILL_AFTER_ACKS) {
            killed = true;
            await killChild('SIGKILL');
            restarting = new Promise((resolve) => setTimeout(resolve, 300)).then(startChild);
          }
        } else {
          // The sending MTA's queue: try again later.
          failures += 1;
          pending.push(messageId);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    if (restarting !== undefined) await restarting;

    expect(killed).toBe(true);
    expect(failures).toBeGreaterThan(0);
    expect(acked.size).toBe(MESSAGES);
    const storedIds = new Map<string, number>();
    for (const message of await storedMessages(harness, 'alice')) {
      const found = /^Message-ID: <([^>]+)>/im.exec(headerBlock(message));
      if (found !== null) storedIds.set(found[1]!, (storedIds.get(found[1]!) ?? 0) + 1);
    }
    const missing = [...acked].filter((messageId) => !storedIds.has(messageId));
    expect(missing).toEqual([]);
    const duplicates = [...storedIds.values()].filter((count) => count > 1).length;
    // Duplicates come only from attempts cut off by the kill (stored, not yet acknowledged).
    expect(duplicates).toBeLessThanOrEqual(CONCURRENCY);
  }, 180_000);
});
