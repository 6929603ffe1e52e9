/**
 * src/keydir — certificates harvested from S/MIME-signed mail the MX received, per domain
 * and address (docs/sending.md "Harvested certificates"): the checks (harvester.ts), the
 * directory's two stores, and how the gateway opens them.
 */
export {
  createHarvester,
  dmarcPassed,
  type Harvester,
  type HarvestOutcome,
  type HarvestResult,
  type HarvestSettings,
} from './harvester.js';
export { openKeyDirectory, KEY_DIRECTORY_FILE } from './open.js';
export { RedisKeyDirectory } from './redis-keydir.js';
export { SqliteKeyDirectory } from './sqlite-keydir.js';
export type { HarvestedCertificate, HarvestedKeyType, KeyDirectory } from './types.js';
