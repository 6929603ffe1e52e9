/**
 * A RecipientDirectory over a real redis-server, for the MX's "key store unavailable"
 * tests: one hash per address (`mx:rcpt:<address>` → mailbox, cert in base64). Fails
 * fast when redis is down (no offline queue, one retry), as the key store adapter does.
 */
import { Redis } from 'ioredis';
import {
  DirectoryUnavailableError,
  type RecipientDirectory,
  type RecipientLookup,
} from '../../src/smtp/ports.js';

export interface RedisDirectory extends RecipientDirectory {
  add(address: string, mailbox: string, groupCertificate: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

export function redisDirectory(port: number, localDomains: string[]): RedisDirectory {
  const redis = new Redis({
    host: '127.0.0.1',
    port,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 1000,
    commandTimeout: 2000,
    retryStrategy: () => 200,
  });
  redis.on('error', () => undefined);
  const key = (address: string): string => `mx:rcpt:${address.toLowerCase()}`;
  return {
    async add(address, mailbox, groupCertificate) {
      if (redis.status === 'wait') await redis.connect();
      // Setup may run right after a restart of redis: wait for the reconnect, unlike resolve().
      if (redis.status !== 'ready') {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('redis not ready')), 10_000);
          redis.once('ready', () => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      await redis.hset(key(address), {
        mailbox,
        cert: Buffer.from(groupCertificate).toString('base64'),
      });
    },
    async resolve(address): Promise<RecipientLookup> {
      const domain = address.slice(address.lastIndexOf('@') + 1).toLowerCase();
      if (!localDomains.includes(domain)) return { kind: 'not-local' };
      try {
        if (redis.status === 'wait') await redis.connect();
        const record = await redis.hgetall(key(address));
        if (record.mailbox === undefined || record.cert === undefined) return { kind: 'unknown' };
        return {
          kind: 'local',
          mailbox: record.mailbox,
          groupCertificate: new Uint8Array(Buffer.from(record.cert, 'base64')),
        };
      } catch (error) {
        throw new DirectoryUnavailableError(`redis: ${(error as Error).message}`);
      }
    },
    async close() {
      redis.disconnect();
    },
  };
}
