/**
 * Device login time by the number of devices an account has (docs/threat-model.md,
 * Limits): `authenticateDevice` on a SQLite key store with a wrong password, for an
 * unknown account and accounts with 1, 2 and 5 devices. Side by side, the earlier scheme
 * (a random salt per device, every hash verified) on the same hashes' count, which grew
 * with the devices. Median of interleaved rounds, so machine load hits every case alike.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  authenticateDevice,
  GatewayKey,
  hashDeviceCredential,
  openKeyStore,
  verifyDeviceCredential,
} from '../src/keystore/index.js';
import { recipientIdOf, spkiOfPoint } from '../src/recrypt/certificates.js';
import { publicPoint, randomScalar } from '../src/recrypt/scalar.js';
import { randomBytes } from 'node:crypto';
import { makeTestUser } from '../test/helpers/proxy-pki.js';

const COUNTS = [0, 1, 2, 5];
const ROUNDS = 15;

export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-login-'));
  const store = await openKeyStore(
    { kind: 'sqlite', path: join(dir, 'keys.sqlite') },
    { gatewayKey: GatewayKey.generate() },
  );
  try {
    const accounts = new Map<number, { address: string; legacy: string[] }>();
    for (const count of COUNTS) {
      const address = `bench-${count}@example.org`;
      const legacy: string[] = [];
      if (count > 0) {
        const user = await makeTestUser(dir, address, count);
        await store.addUser({ address });
        const token = await store.createEnrolmentToken(address, 60_000);
        await store.enrol(address, token, {
          ownerCaCertificate: user.ownerCa,
          groupCertificate: user.group.certDer,
          groupId: Buffer.from(recipientIdOf(user.group.certDer)).toString('hex'),
          ownerKeySpki: spkiOfPoint(publicPoint(randomScalar())),
        });
        for (const device of user.devices) {
          await store.addDevice({
            ownerAddress: address,
            name: device.deviceId,
            certificate: device.certDer,
            deviceId: Buffer.from(device.keys.deviceId).toString('hex'),
            client: 'standard',
            credentialHash: await hashDeviceCredential(device.password, address),
            keys: device.keys.keys,
          });
          legacy.push(await hashDeviceCredential(device.password));
        }
      }
      accounts.set(count, { address, legacy });
    }
    const wrong = randomBytes(18).toString('base64url');
    const samples = new Map<string, number[]>();
    const time = async (name: string, fn: () => Promise<unknown>): Promise<void> => {
      const start = process.hrtime.bigint();
      await fn();
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      samples.set(name, [...(samples.get(name) ?? []), ms]);
    };
    for (let round = -2; round < ROUNDS; round++) {
      for (const count of COUNTS) {
        const { address, legacy } = accounts.get(count)!;
        await time(`now ${count}`, () => authenticateDevice(store, address, wrong));
        // The earlier scheme: one dummy hash for an unknown account, else every device's.
        const hashes = legacy.length === 0 ? [await dummy()] : legacy;
        await time(`before ${count}`, () =>
          Promise.all(hashes.map((hash) => verifyDeviceCredential(wrong, hash))),
        );
      }
      if (round < 0) samples.clear(); // warm-up rounds
    }
    console.log(`wrong-password login, ms (median of ${ROUNDS} interleaved rounds)`);
    console.log(
      `  ${'devices'.padEnd(10)} ${'account salt'.padStart(14)} ${'salt per device'.padStart(16)}`,
    );
    for (const count of COUNTS) {
      const label = count === 0 ? 'unknown' : String(count);
      const now = median(samples.get(`now ${count}`)!);
      const before = median(samples.get(`before ${count}`)!);
      console.log(
        `  ${label.padEnd(10)} ${now.toFixed(1).padStart(14)} ${before.toFixed(1).padStart(16)}`,
      );
    }
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

let dummyHash: Promise<string> | null = null;
function dummy(): Promise<string> {
  dummyHash ??= hashDeviceCredential('recrypt-dummy-password');
  return dummyHash;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}
