/**
 * Throwaway redis-server processes for tests: a single node, or a 3-master Redis
 * Cluster (`--cluster-enabled yes`, joined with `redis-cli --cluster create`). No
 * persistence (`--save '' --appendonly no`), loopback only, ports from freePort().
 * Every process is also killed when the test process exits, in case a test forgets.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { requireBinary } from './binaries.js';
import { freePort } from './ports.js';
import { tempDir } from './tmp.js';

const execFileAsync = promisify(execFile);
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** Sends one inline command and returns the raw reply (enough for PING / CLUSTER INFO). */
async function rawCommand(port: number, command: string, timeoutMs = 500): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let data = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('timeout'));
    }, timeoutMs);
    socket.on('connect', () => socket.write(`${command}\r\n`));
    socket.on('data', (chunk) => {
      data += chunk.toString('utf8');
      // Bulk replies ($len\r\n…\r\n) may come in pieces; simple replies end at the first CRLF.
      const bulk = /^\$(\d+)\r\n/.exec(data);
      if (
        (bulk && data.length >= bulk[0].length + Number(bulk[1]) + 2) ||
        (!bulk && data.includes('\r\n'))
      ) {
        clearTimeout(timer);
        socket.end();
        resolve(data);
      }
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

async function waitFor(
  check: () => Promise<boolean>,
  what: string,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

export interface RedisNode {
  host: '127.0.0.1';
  port: number;
  /** Stops the server (SIGTERM, then SIGKILL) and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port and directory, and waits for PING. */
  start(): Promise<void>;
  /** Freezes (SIGSTOP) or thaws (SIGCONT) it: connections stay open, nothing answers. */
  freeze(frozen: boolean): void;
  readonly running: boolean;
}

function launchNode(port: number, dir: string, extra: string[], configFile?: string): RedisNode {
  const server = requireBinary('redis-server');
  let child: ChildProcess | null = null;
  const node: RedisNode = {
    host: '127.0.0.1',
    port,
    get running() {
      return child !== null;
    },
    async start() {
      if (child !== null) return;
      const args = [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
      ];
      const proc = spawn(server, [...(configFile ? [configFile] : []), ...args, ...extra], {
        stdio: process.env.REDIS_TEST_LOG ? 'inherit' : 'ignore',
      });
      child = proc;
      live.add(proc);
      proc.on('exit', () => {
        live.delete(proc);
        if (child === proc) child = null;
      });
      await waitFor(
        async () => (await rawCommand(port, 'PING')).startsWith('+PONG'),
        `redis-server on ${port}`,
      );
    },
    freeze(frozen: boolean) {
      child?.kill(frozen ? 'SIGSTOP' : 'SIGCONT');
    },
    async stop() {
      const proc = child;
      if (proc === null) return;
      child = null;
      const exited = new Promise<void>((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) resolve();
        else proc.once('exit', () => resolve());
      });
      proc.kill('SIGCONT');
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    },
  };
  return node;
}

/** Starts `node`; if it does not come up, stops it and removes its directory. */
async function startOrClean(node: RedisNode, dir: { remove: () => void }): Promise<void> {
  try {
    await node.start();
  } catch (err) {
    await node.stop();
    dir.remove();
    throw err;
  }
}

export interface RedisServer extends RedisNode {
  url: string;
  /** Stops the server and removes its directory. */
  dispose(): Promise<void>;
}

export async function startRedis(): Promise<RedisServer> {
  const dir = tempDir('recrypt-redis-');
  const port = await freePort();
  const node = launchNode(port, dir.path, []);
  await startOrClean(node, dir);
  return Object.assign(node, {
    url: `redis://127.0.0.1:${port}`,
    async dispose() {
      await node.stop();
      dir.remove();
    },
  });
}

export interface RedisCluster {
  nodes: RedisNode[];
  /** Stops every node and removes the directories. */
  dispose(): Promise<void>;
}

/** Three masters, no replicas, all 16384 slots assigned, cluster_state:ok on every node. */
export async function startRedisCluster(): Promise<RedisCluster> {
  const cli = requireBinary('redis-cli');
  const dir = tempDir('recrypt-redis-cluster-');
  const nodes: RedisNode[] = [];
  const dispose = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => n.stop()));
    dir.remove();
  };
  try {
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const nodeDir = `${dir.path}/${port}`;
      await execFileAsync('mkdir', ['-p', nodeDir]);
      const node = launchNode(port, nodeDir, [
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        'nodes.conf',
        '--cluster-node-timeout',
        '2000',
      ]);
      nodes.push(node);
      await node.start();
    }
    await execFileAsync(cli, [
      '--cluster',
      'create',
      ...nodes.map((n) => `127.0.0.1:${n.port}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    for (const node of nodes) {
      await waitFor(
        async () => (await rawCommand(node.port, 'CLUSTER INFO')).includes('cluster_state:ok'),
        `cluster state ok on ${node.port}`,
      );
    }
    return { nodes, dispose };
  } catch (err) {
    await dispose();
    throw err;
  }
}

export interface RedisSentinel extends RedisNode {
  /** The monitored master's name. */
  name: string;
  dispose(): Promise<void>;
}

/**
 * One Sentinel (quorum 1) watching `master`. Sentinel rewrites its configuration file,
 * so it gets its own in a temp directory.
 */
export async function startRedisSentinel(
  master: { port: number },
  name = 'recrypt',
): Promise<RedisSentinel> {
  const dir = tempDir('recrypt-sentinel-');
  const port = await freePort();
  const configFile = join(dir.path, 'sentinel.conf');
  writeFileSync(
    configFile,
    [
      `sentinel monitor ${name} 127.0.0.1 ${master.port} 1`,
      `sentinel down-after-milliseconds ${name} 60000`,
      '',
    ].join('\n'),
  );
  const node = launchNode(port, dir.path, ['--sentinel'], configFile);
  await startOrClean(node, dir);
  return Object.assign(node, {
    name,
    async dispose() {
      await node.stop();
      dir.remove();
    },
  });
}
