import { startRedisCluster } from '../helpers/redis.js';
import { describeKeyStoreContract } from './contract.js';
import { redisHarness } from './redis-harness.js';

describeKeyStoreContract('Redis Cluster (3 masters)', async () => {
  const cluster = await startRedisCluster();
  const nodes = cluster.nodes.map((n) => ({ host: n.host, port: n.port }));
  return redisHarness(
    { kind: 'redis-cluster', nodes },
    { nodes },
    {
      stop: async () => {
        await Promise.all(cluster.nodes.map((n) => n.stop()));
      },
      // The nodes keep nodes.conf, so they come back as the same cluster (empty: no persistence).
      start: async () => {
        await Promise.all(cluster.nodes.map((n) => n.start()));
      },
    },
    () => cluster.dispose(),
  );
});
