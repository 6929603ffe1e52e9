/**
 * The paths of bench/proxy.bench.ts: one timed FETCH pass with imapflow (its reads
 * counted), one with the minimal reader (raw-fetch.ts, checked for every message and
 * byte), and the proxies' own process (proxy-child.ts) with its command channel.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ImapFlow } from 'imapflow';
import { timeMs } from './harness.js';
import type { ChildConfig, ChildPorts } from './proxy-child.js';
import { rawFetch, type RawFetchResult } from './raw-fetch.js';

const proxiesScript = join(fileURLToPath(new URL('.', import.meta.url)), 'proxy-child.ts');

/** imapflow's reads (socket 'data' events) and bytes during the last timed FETCH. */
export const imapflowReads = new Map<string, { reads: number; bytes: number }>();

/** One imapflow session: connect and open the mailbox untimed, then the FETCH timed (ms). */
export async function timeFetch(
  name: string,
  make: () => ImapFlow,
  mailbox: string,
  expected: number,
): Promise<number> {
  const client = make();
  await client.connect();
  try {
    await client.mailboxOpen(mailbox, { readOnly: true });
    const counted = { reads: 0, bytes: 0 };
    const socket = (client as unknown as { socket: NodeJS.ReadableStream }).socket;
    const onData = (chunk: Buffer): void => {
      counted.reads++;
      counted.bytes += chunk.length;
    };
    socket.on('data', onData);
    let count = 0;
    const ms = await timeMs(async () => {
      for await (const message of client.fetch('1:*', { source: true })) {
        if ((message.source?.length ?? 0) > 0) count++;
      }
    });
    socket.off('data', onData);
    imapflowReads.set(name, counted);
    if (count !== expected) throw new Error(`${mailbox}: fetched ${count} of ${expected} messages`);
    return ms;
  } finally {
    await client.logout();
  }
}

/** The minimal reader's pass, checked: every message and every byte came. */
export async function timeRaw(
  port: number,
  login: string,
  set: { mailbox: string; count: number; bytes: number },
  hash = false,
): Promise<RawFetchResult> {
  const result = await rawFetch({ port, login, mailbox: set.mailbox, hash });
  if (result.messages !== set.count || result.literalBytes !== set.bytes)
    throw new Error(
      `${set.mailbox}: ${result.messages} messages, ${result.literalBytes} bytes; ` +
        `expected ${set.count}, ${set.bytes}`,
    );
  return result;
}

/** The proxies' process (proxy-child.ts): its ports, and one command at a time. */
export async function startProxies(config: ChildConfig): Promise<{
  ports: ChildPorts;
  ask: (line: string) => Promise<unknown>;
  child: ChildProcess;
}> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', proxiesScript, JSON.stringify(config)],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async (): Promise<unknown> => {
    const line = await lines.next();
    if (line.done === true) throw new Error('the proxies process ended');
    return JSON.parse(line.value as string) as unknown;
  };
  const ports = (await next()) as ChildPorts;
  const ask = async (line: string): Promise<unknown> => {
    child.stdin!.write(`${line}\n`);
    return next();
  };
  return { ports, ask, child };
}
