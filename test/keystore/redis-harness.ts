/** The contract harness for the Redis adapter, single node or Cluster. */
import { Cluster, Redis } from 'ioredis';
import { type KeyStoreConfig, openKeyStore } from '../../src/keystore/index.js';
import type { ContractHarness } from './contract.js';

const PREFIX = 'recrypt:';

async function valuesOf(node: Redis): Promise<Buffer[]> {
  const out: Buffer[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await node.scanBuffer(cursor, 'MATCH', `${PREFIX}*`, 'COUNT', 1000);
    cursor = String(next);
    for (const key of keys) {
      out.push(key);
      const type = await node.type(key);
      if (type === 'string') out.push((await node.getBuffer(key))!);
      else if (type === 'hash')
        out.push(...Object.values(await node.hgetallBuffer(key)).map((v) => Buffer.from(v)));
      else if (type === 'set') out.push(...(await node.smembersBuffer(key)));
      // DUMP is the serialised form a copy of the database would hold.
      const dumped = await node.dumpBuffer(key);
      if (dumped) out.push(dumped);
    }
  } while (cursor !== '0');
  return out;
}

/**
 * `config` is what the store opens; `rawAccess` how the test reads the data behind its
 * back (the master's URL for Sentinel).
 */
export function redisHarness(
  config: Exclude<KeyStoreConfig, { kind: 'sqlite' }>,
  rawAccess: { url: string } | { nodes: Array<{ host: string; port: number }> },
  outage: ContractHarness['outage'],
  dispose: () => Promise<void>,
): ContractHarness {
  const raw =
    'url' in rawAccess
      ? new Redis(rawAccess.url, { lazyConnect: true })
      : new Cluster(rawAccess.nodes, { lazyConnect: true });
  raw.on('error', () => {});
  let connected = false;
  const ready = async (): Promise<void> => {
    if (!connected) await raw.connect();
    connected = true;
  };
  return {
    open: (gatewayKey) => openKeyStore(config, { gatewayKey, prefix: PREFIX }),
    async rawContents() {
      await ready();
      if (raw instanceof Cluster)
        return (await Promise.all(raw.nodes('master').map(valuesOf))).flat();
      return valuesOf(raw);
    },
    // A wrong-typed rk key: the change script must notice before its first write.
    async injectKeyWriteFault(address) {
      await ready();
      const key = `${PREFIX}{u:${address}}:rk`;
      await raw.set(key, 'not a hash');
      return async () => {
        await raw.del(key);
      };
    },
    ...(outage ? { outage } : {}),
    async dispose() {
      raw.disconnect();
      await dispose();
    },
  };
}
