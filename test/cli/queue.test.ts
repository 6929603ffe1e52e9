/**
 * `recrypt queue list|flush`, the real CLI on a queue directory that the real outbound
 * queue wrote (not started, so the jobs stay): every waiting job is listed with its
 * recipient and schedule, an unreadable entry is named, and flush leaves the request the
 * running gateway consumes (test/outbound/durability.test.ts covers that side).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { openOutboundQueue } from '../../src/outbound/index.js';
import { runCli } from '../helpers/cli-run.js';
import { tempDir } from '../helpers/tmp.js';

describe('recrypt queue', () => {
  const dir = tempDir('recrypt-queue-cli-');
  const configFile = join(dir.path, 'recrypt.yaml');
  const dataDir = join(dir.path, 'data');
  writeFileSync(configFile, `dataDir: ${dataDir}\n`);
  afterAll(() => dir.remove());

  it('lists nothing on an empty queue', async () => {
    const result = await runCli(['queue', 'list', '--config', configFile]);
    expect(result.stderr).toBe('');
    expect(result.stdout.trim()).toBe('the outbound queue is empty');
  });

  it('lists waiting jobs and unreadable entries; flush leaves the request', async () => {
    const queue = await openOutboundQueue({
      dir: join(dataDir, 'queue'),
      config: configSchema.parse({}).outbound,
      logger: pino({ enabled: false }),
    });
    const ids = await queue.enqueue([
      { mailFrom: 'team-bounces@lists.test', to: 'ann@remote.test', message: Buffer.from('a\r\n') },
      { mailFrom: '', to: 'bo@remote.test', message: Buffer.from('b\r\n') },
    ]);
    await queue.close();
    mkdirSync(join(dataDir, 'queue', 'pending', 'zzzzzzzzz-0000000000000000'));

    const listed = await runCli(['queue', 'list', '--config', configFile]);
    expect(listed.stderr).toBe('');
    const lines = listed.stdout.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines.find((l) => l.startsWith(ids[0]!))).toMatch(
      /\tann@remote\.test\tfrom team-bounces@lists\.test\t0 attempt\(s\)\tnext \d{4}-/,
    );
    expect(lines.find((l) => l.startsWith(ids[1]!))).toMatch(/\tbo@remote\.test\tfrom <>\t/);
    expect(lines.at(-1)).toMatch(/^zzzzzzzzz-0000000000000000\tunreadable: no meta\.json$/);

    const flushed = await runCli(['queue', 'flush', '--config', configFile]);
    expect(flushed.stdout).toContain('flush requested');
    expect(existsSync(join(dataDir, 'queue', 'flush'))).toBe(true);
  });
});
