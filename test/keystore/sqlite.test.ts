import Database from 'better-sqlite3';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openKeyStore } from '../../src/keystore/index.js';
import { tempDir } from '../helpers/tmp.js';
import { describeKeyStoreContract } from './contract.js';

describeKeyStoreContract('SQLite', async () => {
  const dir = tempDir('recrypt-keystore-sqlite-');
  const path = join(dir.path, 'keystore.sqlite');
  return {
    open: (gatewayKey) =>
      openKeyStore({ kind: 'sqlite', path: 'keystore.sqlite' }, { gatewayKey, dataDir: dir.path }),
    // The database file and its WAL and shared-memory files, byte for byte.
    rawContents: async () =>
      readdirSync(dir.path).map((name) => readFileSync(join(dir.path, name))),
    // A trigger that aborts the key insert: a real fault in the second half of the change.
    injectKeyWriteFault: async () => {
      const db = new Database(path);
      db.exec(
        `CREATE TRIGGER fault BEFORE INSERT ON device_keys BEGIN SELECT RAISE(ABORT, 'injected fault'); END`,
      );
      return async () => {
        db.exec('DROP TRIGGER fault');
        db.close();
      };
    },
    dispose: async () => dir.remove(),
  };
});
