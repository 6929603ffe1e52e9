/**
 * The gateway holds no secret that reads mail . After enrolment and two
 * devices, everything the gateway stores — every file in its data directory (SQLite
 * file and WAL, gateway key, admin token, TLS key), its config, every row of its key
 * store, and even the recryption keys unwrapped with the gateway key — is mined for
 * scalar-looking values, and each is tried as the key of a stored message and of its
 * recryptions for both devices. None decrypts; each device's .p12 does; and the same
 * search does find the keys when they are present (so it is not vacuous).
 */
import Database from 'better-sqlite3';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readOwnerKeyFile } from '../../src/owner/index.js';
import {
  WRAP_ENCODING_OF_CLIENT,
  decryptEnvelope,
  envelopeForGroup,
  invertScalar,
  readPkcs12,
  recipientIdOf,
  recryptDer,
  scalarToBytes,
} from '../../src/recrypt/index.js';
import { requireBinary } from '../helpers/binaries.js';
import {
  PASSPHRASE,
  addDeviceViaCli,
  enrolViaCli,
  startCliWorld,
  type AddedDeviceOutput,
  type CliWorld,
  type EnrolledOwner,
} from '../helpers/cli-flow.js';
import {
  filesUnder,
  keysThatDecrypt,
  scalarCandidates,
  type Target,
} from '../helpers/cli-secret-scan.js';

const ADDRESS = 'carol@example.net';
const original = new Uint8Array(
  readFileSync(new URL('../fixtures/cli/message.eml', import.meta.url)),
);

describe('the gateway stores nothing that decrypts mail', () => {
  let world: CliWorld;
  let owner: EnrolledOwner;
  let devices: AddedDeviceOutput[];
  let targets: Target[];

  beforeAll(async () => {
    world = await startCliWorld();
    owner = await enrolViaCli(world, ADDRESS, 'Carol');
    // Two independent devices: added side by side.
    devices = await Promise.all([
      addDeviceViaCli(owner, 'phone', 'standard'),
      addDeviceViaCli(owner, 'tablet', 'outlook'),
    ]);
    const { keyStore } = world.gateway;
    const user = (await keyStore.getUser(ADDRESS))!;
    const stored = envelopeForGroup(original, user.owner!.groupCertificate);
    targets = [
      {
        what: 'stored message (group)',
        der: stored,
        recipientId: Buffer.from(user.owner!.groupId, 'hex'),
      },
    ];
    for (const added of devices) {
      const device = (await keyStore.getDevice(ADDRESS, added.id))!;
      const deviceId = Buffer.from(device.deviceId, 'hex');
      const keys = await keyStore.keysForDevice(ADDRESS, added.id);
      const recrypted = recryptDer(stored, {
        deviceId,
        wrapEncoding: WRAP_ENCODING_OF_CLIENT[device.client],
        keys,
      });
      targets.push({ what: `recrypted for ${device.name}`, der: recrypted, recipientId: deviceId });
    }
  });
  afterAll(async () => {
    await world?.close();
  });

  it("each device's .p12 decrypts its recrypted message", async () => {
    for (const [index, added] of devices.entries()) {
      const p12 = await readPkcs12(new Uint8Array(readFileSync(added.p12File)), added.p12Password);
      const target = targets[index + 1]!;
      expect(
        Buffer.from(recipientIdOf(p12.certificate)).equals(Buffer.from(target.recipientId)),
      ).toBe(true);
      expect(
        Buffer.compare(
          decryptEnvelope(target.der, {
            secret: p12.deviceSecret,
            recipientId: target.recipientId,
          }),
          original,
        ),
      ).toBe(0);
    }
  });

  it('the search finds the keys where they do exist (owner key file contents, a PEM device key)', async () => {
    const key = await readOwnerKeyFile(owner.keyFile, PASSPHRASE);
    const ownerJson = Buffer.from(
      JSON.stringify({ groupSecret: Buffer.from(scalarToBytes(key.groupSecret)).toString('hex') }),
    );
    expect(keysThatDecrypt(scalarCandidates(ownerJson), targets)).toHaveLength(1);
    const pem = execFileSync(requireBinary('openssl'), [
      'pkcs12',
      '-in',
      devices[0]!.p12File,
      '-passin',
      `pass:${devices[0]!.p12Password}`,
      '-nodes',
      '-nocerts',
    ]);
    const found = keysThatDecrypt(scalarCandidates(pem), targets);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/^recrypted for phone: /);
  });

  it('nothing in the data directory, config or key store decrypts a stored or recrypted message', async () => {
    const { config, keyStore } = world.gateway;
    const candidates = new Set<string>();
    const sources: string[] = [];
    for (const file of [
      ...filesUnder(config.dataDir),
      { path: world.configFile, bytes: new Uint8Array(readFileSync(world.configFile)) },
    ]) {
      scalarCandidates(file.bytes, candidates);
      sources.push(file.path);
    }
    // Every value of every row, read straight from the SQLite file.
    const db = new Database(join(config.dataDir, 'keystore.sqlite'), { readonly: true });
    try {
      const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as {
        name: string;
      }[];
      for (const { name } of tables) {
        for (const row of db.prepare(`SELECT * FROM "${name}"`).all() as Record<
          string,
          unknown
        >[]) {
          for (const value of Object.values(row)) {
            if (value instanceof Uint8Array) scalarCandidates(value, candidates);
            else if (typeof value === 'string')
              scalarCandidates(Buffer.from(value, 'utf8'), candidates);
          }
        }
        sources.push(`table ${name}`);
      }
    } finally {
      db.close();
    }
    // An attacker with the data directory can unwrap the recryption keys: try them too.
    for (const added of devices) {
      for (const rk of (await keyStore.keysForDevice(ADDRESS, added.id)).values()) {
        candidates.add(Buffer.from(scalarToBytes(rk)).toString('hex'));
        candidates.add(Buffer.from(scalarToBytes(invertScalar(rk))).toString('hex'));
      }
    }
    expect(sources).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/gateway\.key$/),
        expect.stringMatching(/key\.pem$/),
        'table device_keys',
        'table users',
      ]),
    );
    expect(candidates.size).toBeGreaterThan(1000);
    expect(keysThatDecrypt(candidates, targets)).toEqual([]);
  });
});
