/**
 * What the bridge adds to a client's APPEND (src/bridge/append-encrypt.ts), side by side in
 * one run: the encryption alone (what the gateway's proxy does for a plain client), the
 * bridge's path with a verified group certificate it already holds, and the bridge's
 * path when it fetches and verifies the profile first (HTTPS GET from a real node:https
 * server on 127.0.0.1, JWS and certificate checks: what happens once a minute, the
 * default of group-certificate.ts). Messages of 4 KiB and 1 MiB; rounds interleaved,
 * best round kept.
 */
import { createServer } from 'node:https';
import {
  DEFAULT_APPEND_LIMIT,
  groupAppendEncryptor,
} from '../src/imap/adapters/append-encryption.js';
import { AppendEncryption } from '../src/bridge/append-encrypt.js';
import { GroupCertificateSource } from '../src/bridge/group-certificate.js';
import { ensureTlsMaterial } from '../src/config/tls.js';
import { buildProfile, profileRequestListener, signProfile } from '../src/profiles/index.js';
import {
  issueDeviceCertificate,
  issueGroupCertificate,
  issueOwnerCa,
  publicPoint,
  randomScalar,
} from '../src/recrypt/index.js';
import { tempDir } from '../test/helpers/tmp.js';

const ADDRESS = 'alice@example.org';
const ROUNDS = 5;
const PER_ROUND = 20;

function message(size: number): Buffer {
  const head = `From: ${ADDRESS}\r\nTo: bob@example.net\r\nSubject: bench\r\n\r\n`;
  return Buffer.concat([Buffer.from(head), Buffer.alloc(size - head.length, 'x')]);
}

export async function run(): Promise<void> {
  const dir = tempDir('recrypt-bench-bridge-append-');
  const now = new Date(Date.now() - 60_000);
  const ca = await issueOwnerCa({ now });
  const group = await issueGroupCertificate({
    ca: ca.certificate,
    caSecret: ca.secret,
    publicKey: publicPoint(randomScalar()),
    address: ADDRESS,
    now,
  });
  const device = await issueDeviceCertificate({
    ca: ca.certificate,
    caSecret: ca.secret,
    publicKey: publicPoint(randomScalar()),
    address: ADDRESS,
    name: 'laptop',
    now,
  });
  const jws = signProfile(
    buildProfile({
      address: ADDRESS,
      name: 'Alice',
      ownerPublicKey: publicPoint(ca.secret),
      groupCertificate: group,
      issued: now,
    }),
    ca.secret,
  );
  const tls = await ensureTlsMaterial(dir.path, undefined, new Date(), 'localhost');
  const server = createServer(
    { key: tls.key, cert: tls.cert },
    profileRequestListener({
      getSignedProfile: async () => jws,
      getGroupCertificate: async () => group,
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const baseUrl = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
  const bridgeWith = (maxAgeMs: number) =>
    new AppendEncryption(
      new GroupCertificateSource({
        address: ADDRESS,
        deviceCertificate: device,
        baseUrl,
        ca: tls.cert.toString(),
        maxAgeMs,
      }),
    );
  const proxy = groupAppendEncryptor(group, DEFAULT_APPEND_LIMIT);
  const cached = bridgeWith(3_600_000);
  const fetching = bridgeWith(0);
  await cached.encrypt('Drafts', message(100)); // the first fetch, outside the figures
  const cases: Array<{ name: string; fn: (m: Buffer) => Promise<unknown> }> = [
    { name: 'proxy: wrapMessage alone', fn: async (m) => proxy.encrypt(m) },
    { name: 'bridge: certificate held', fn: (m) => cached.encrypt('Drafts', m) },
    { name: 'bridge: profile fetched and verified', fn: (m) => fetching.encrypt('Drafts', m) },
  ];
  try {
    for (const size of [4 * 1024, 1024 * 1024]) {
      const m = message(size);
      const best = new Map(cases.map((c) => [c.name, Infinity]));
      for (let round = 0; round < ROUNDS; round++) {
        for (const c of cases) {
          const start = process.hrtime.bigint();
          for (let i = 0; i < PER_ROUND; i++) await c.fn(m);
          const ms = Number(process.hrtime.bigint() - start) / 1e6 / PER_ROUND;
          best.set(c.name, Math.min(best.get(c.name)!, ms));
        }
      }
      console.log(`APPEND of ${size / 1024} KiB, ms per message (best of ${ROUNDS} rounds):`);
      for (const c of cases) console.log(`  ${c.name.padEnd(40)} ${best.get(c.name)!.toFixed(3)}`);
    }
  } finally {
    await new Promise((resolve) => server.close(resolve));
    dir.remove();
  }
}
