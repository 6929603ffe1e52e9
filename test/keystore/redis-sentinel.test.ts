import { startRedis, startRedisSentinel } from '../helpers/redis.js';
import { describeKeyStoreContract } from './contract.js';
import { redisHarness } from './redis-harness.js';

describeKeyStoreContract('Redis through Sentinel', async () => {
  const master = await startRedis();
  let sentinel;
  try {
    sentinel = await startRedisSentinel(master);
  } catch (err) {
    await master.dispose();
    throw err;
  }
  const watcher = sentinel;
  return redisHarness(
    {
      kind: 'redis-sentinel',
      sentinels: [{ host: watcher.host, port: watcher.port }],
      name: watcher.name,
    },
    { url: master.url },
    // The master goes away; Sentinel stays and keeps naming it.
    { stop: () => master.stop(), start: () => master.start() },
    async () => {
      await watcher.dispose();
      await master.dispose();
    },
  );
});
