import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createMaildirStore } from '../../src/store/maildir/index.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * kill -9 during delivery: a child process delivers large messages in a loop and is
 * SIGKILLed at a random moment, several times over the same store. After each kill the
 * reopened store must show only complete messages (body hash matches the header), every
 * message the child reported as delivered, and nothing else half-visible.
 */

const USER = 'crash@example.com';
const ROUNDS = 6;
const tmp = tempDir('recrypt-crash-');
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  tmp.remove();
});

function runUntilKilled(root: string, minDeliveries: number): Promise<number[]> {
  const script = join(import.meta.dirname, '../helpers/store-deliver-loop.ts');
  const child = spawn(process.execPath, ['--import', 'tsx', script, root, USER], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const delivered: number[] = [];
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    let armed = false;
    child.stdout?.on('data', (d: Buffer) => {
      for (const m of d.toString().matchAll(/delivered (\d+)/g)) delivered.push(Number(m[1]));
      if (!armed && delivered.length >= minDeliveries) {
        armed = true;
        // a random moment inside the next deliveries: mid-write, mid-fsync or mid-rename
        setTimeout(() => child.kill('SIGKILL'), Math.floor(Math.random() * 400));
      }
    });
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(delivered);
      else reject(new Error(`child exited early (${code}): ${stderr.slice(0, 2000)}`));
    });
  });
}

describe('kill -9 during delivery', () => {
  it(`leaves only complete messages, every acknowledged one kept (${ROUNDS} rounds)`, async () => {
    const root = join(tmp.path, 'root');
    const setup = await createMaildirStore({ root });
    await setup.createUser(USER);
    await setup.close();

    const acknowledged = new Set<number>();
    let lastCount = 0;
    let midWrite = 0;
    let tornBefore = 0;
    for (let round = 0; round < ROUNDS; round++) {
      for (const uid of await runUntilKilled(root, 2 + round)) acknowledged.add(uid);

      const store = await createMaildirStore({ root });
      try {
        const box = await (await store.openUser(USER)).openMailbox('INBOX', { readOnly: true });
        const records = box.records();
        const uids = records.map((r) => r.uid);
        for (const uid of acknowledged) expect(uids).toContain(uid);
        expect(records.length).toBeGreaterThanOrEqual(lastCount);
        for (const record of records) {
          const bytes = Buffer.from(await box.read(record.uid));
          expect(bytes.length).toBe(record.size);
          const split = bytes.indexOf('\r\n\r\n');
          const header = bytes.subarray(0, split).toString();
          const body = bytes.subarray(split + 4);
          const want = /X-Body-SHA256: ([0-9a-f]{64})/.exec(header)?.[1];
          expect(want, `uid ${record.uid} has its hash header`).toBeDefined();
          expect(
            createHash('sha256').update(body).digest('hex'),
            `uid ${record.uid} is complete`,
          ).toBe(want);
        }
        // files visible to a Maildir reader (new/, cur/) are exactly the listed ones
        const maildir = join(root, USER, 'Maildir');
        const visible =
          readdirSync(join(maildir, 'new')).length + readdirSync(join(maildir, 'cur')).length;
        expect(visible).toBe(records.length);
        lastCount = records.length;
        // a file left in tmp/ means this kill landed mid-write (informational: random)
        if (readdirSync(join(maildir, 'tmp')).length > tornBefore) midWrite++;
        tornBefore = readdirSync(join(maildir, 'tmp')).length;
        await box.close();
      } finally {
        await store.close();
      }
    }
    expect(acknowledged.size).toBeGreaterThanOrEqual(ROUNDS * 2);
    console.log(
      `kill -9: ${ROUNDS} rounds, ${midWrite} landed mid-write, ${acknowledged.size} acknowledged messages all intact`,
    );
  });
});
