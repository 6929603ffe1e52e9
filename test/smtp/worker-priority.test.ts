/**
 * The MX's worker threads (encryption, sender authentication) run below the event loop's
 * CPU priority (src/smtp/worker-priority.ts), and only they do: the real pools are
 * started and each thread's nice value is read from /proc, as the kernel sees it.
 * Run by Vitest, the workers load the tests' JavaScript build of src/ (test/setup/cli-build.ts).
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { EncryptPool } from '../../src/smtp/adapters/encrypt-pool.js';
import { AuthPool } from '../../src/smtp/auth-pool.js';
import { WORKER_NICE_STEPS } from '../../src/smtp/worker-priority.js';
import { makeOpensslGroup } from '../helpers/smtp-openssl-encryptor.js';
import { tempDir } from '../helpers/tmp.js';

/** nice of every thread of this process, by thread id (field 19 of /proc/…/stat). */
function niceByThread(): Map<number, number> {
  const nice = new Map<number, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended meanwhile
    }
    // The command name may hold spaces and parentheses: the fields follow the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    nice.set(Number(tid), Number(fields[16]));
  }
  return nice;
}

/** This (event-loop) thread's id: /proc/thread-self links to <pid>/task/<tid>. */
const ownThread = (): number => Number(readlinkSync('/proc/thread-self').split('/').pop());

const dir = tempDir('recrypt-worker-priority-');
const pools: { close(): Promise<void> }[] = [];
afterAll(async () => {
  await Promise.all(pools.map((pool) => pool.close()));
  dir.remove();
});

describe('worker thread priority (Linux: nice is per thread)', () => {
  it('the encryption and authentication workers run 10 nice steps below the event loop, which keeps its own', async () => {
    const before = niceByThread();
    const own = before.get(ownThread())!;
    expect(own).toBeLessThanOrEqual(19 - WORKER_NICE_STEPS);

    const encrypt = new EncryptPool({ size: 1 });
    const auth = new AuthPool({
      size: 1,
      resolver: async (name) => {
        throw Object.assign(new Error(`ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
      },
    });
    pools.push(encrypt, auth);
    // A job each, answered by the worker: its module (and so the priority call) has run.
    // An encrypted copy, its S/MIME header section and every announced byte, comes only
    // from a worker that ran it (one that died while loading fails the job instead).
    const group = makeOpensslGroup(dir.path, 'priority');
    const copy = await encrypt.stream(Buffer.from('Subject: x\r\n\r\nx\r\n'), group.certDer);
    expect(Buffer.from(copy.head).toString('latin1')).toMatch(
      /^content-type:[ \t]*application\/(x-)?pkcs7-mime/im,
    );
    let copyBytes = copy.head.byteLength;
    for await (const piece of copy.body()) copyBytes += piece.byteLength;
    expect(copyBytes).toBe(copy.byteLength);
    const message = Buffer.from(new SharedArrayBuffer(64));
    message.write('From: a@sender.example\r\nSubject: x\r\n\r\nbody\r\n');
    await auth.check(
      {
        message,
        ip: '127.0.0.1',
        helo: 'test.example',
        sender: 'a@sender.example',
        mta: 'mx',
        maxDkimSignatures: 5,
      },
      60_000,
    );

    const after = niceByThread();
    const started = [...after].filter(([tid]) => !before.has(tid));
    const lowered = started.filter(([, nice]) => nice === own + WORKER_NICE_STEPS);
    expect(lowered.length).toBeGreaterThanOrEqual(2);
    // Every thread the pools started runs below the event loop: the tests load the workers
    // as a deployed gateway does (src/smtp/pool-worker.ts), not through a module loader
    // thread of their own at the event loop's priority.
    expect(started.filter(([, nice]) => nice !== own + WORKER_NICE_STEPS)).toEqual([]);
    expect(after.get(ownThread())).toBe(own);
    // Nothing that was running before (the event loop, libuv's and V8's threads) changed.
    for (const [tid, nice] of before) if (after.has(tid)) expect(after.get(tid)).toBe(nice);
  });
});
