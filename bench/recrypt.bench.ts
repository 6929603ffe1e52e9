/**
 * Recrypt core benchmark, all side by side in one run:
 *  (a) µs per recrypt of one S/MIME message at 1 KB, 1 MB, 10 MB (plan from the message
 *      + patch in place, what the IMAP proxy does; must be flat in size), and the point
 *      multiplication alone on the @noble/curves path vs the node:crypto path;
 *  (b) envelope encryption throughput (wrapMessage: CMS + base64 lines) in MB/s;
 *  (c) recrypt vs what a re-encrypting gateway pays: decrypt with the group key, then
 *      encrypt again to the device certificate.
 * Every comparison runs interleaved over BENCH_ROUNDS rounds (harness.ts); the point
 * cache's lookup is measured beside the multiplication it replaces.
 */
import {
  issueDeviceCertificate,
  issueGroupCertificate,
  issueOwnerCa,
  recipientIdOf,
} from '../src/recrypt/certificates.js';
import { decryptMessage } from '../src/recrypt/decrypt.js';
import {
  multiplyPoint,
  recryptPoint,
  publicPoint,
  randomScalar,
  recryptionKey,
} from '../src/recrypt/scalar.js';
import { wrapMessage } from '../src/recrypt/smime.js';
import { applyEdits, planRecrypt } from '../src/recrypt/transform.js';
import type { DeviceRecryptKeys } from '../src/recrypt/types.js';
import { liveFingerprint } from '../src/imap/plan-codec.js';
import { PointCache } from '../src/imap/point-cache.js';
import { compare, expectNotFaster, formatResults, ratio, SanityChecks } from './harness.js';

/**
 * One sample for the harness: µs per call of `fn`, over a batch lasting about `ms`
 * (the batch size is found once, on the first call, so every sample does the same work).
 */
function perCall(fn: () => void, ms = 200): () => number {
  let batch = 0;
  return () => {
    if (batch === 0) {
      fn();
      const start = performance.now();
      let n = 0;
      while (performance.now() - start < ms / 4) {
        fn();
        n++;
      }
      batch = Math.max(1, n * 4);
    }
    const start = performance.now();
    for (let i = 0; i < batch; i++) fn();
    return ((performance.now() - start) * 1000) / batch;
  };
}

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

function messageOfSize(size: number): Uint8Array {
  const header = Buffer.from(
    'From: a@example.org\r\nTo: b@example.net\r\nSubject: bench\r\n\r\n',
    'latin1',
  );
  const out = new Uint8Array(size);
  out.set(header.subarray(0, size));
  for (let i = header.length; i < size; i++) out[i] = (i * 131 + 7) & 0xff;
  return out;
}

const fmt = (n: number, digits = 1): string => n.toFixed(digits).padStart(10);

export async function run(): Promise<void> {
  const now = new Date();
  const ca = await issueOwnerCa({ now });
  const g = randomScalar();
  const d = randomScalar();
  const groupCert = await issueGroupCertificate({
    ca: ca.certificate,
    caSecret: ca.secret,
    publicKey: publicPoint(g),
    address: 'bob@example.net',
    now,
  });
  const deviceCert = await issueDeviceCertificate({
    ca: ca.certificate,
    caSecret: ca.secret,
    publicKey: publicPoint(d),
    address: 'bob@example.net',
    name: 'laptop',
    now,
  });
  const groupId = recipientIdOf(groupCert);
  const rk = recryptionKey(g, d);
  const keys: DeviceRecryptKeys = {
    deviceId: recipientIdOf(deviceCert),
    wrapEncoding: 'absent',
    keys: new Map([[Buffer.from(groupId).toString('hex'), rk]]),
  };

  const point = publicPoint(randomScalar());
  // What the proxy does instead of multiplying once a point is kept (src/imap/point-cache.ts).
  const points = new PointCache(':memory:');
  const scope = {
    owner: 'bob@example.net',
    device: 'laptop',
    storeUser: 'bob@example.net',
    fingerprint: liveFingerprint(keys),
  };
  const key = { mailbox: 'INBOX', uidValidity: 1, uid: 1, section: 'BODY[]' };
  points.set(scope, key, {
    kind: 'edits',
    edits: [
      { offset: 200, bytes: recryptPoint(point, rk) },
      { offset: 300, bytes: keys.deviceId },
    ],
  });
  points.flush();
  const checks = new SanityChecks();
  const multiply = await compare(
    [
      { name: '@noble/curves', run: perCall(() => multiplyPoint(point, rk)) },
      { name: 'node:crypto (recryptPoint)', run: perCall(() => recryptPoint(point, rk)) },
      { name: 'point cache hit', run: perCall(() => points.get(scope, key)) },
    ],
    { rounds: ROUNDS },
  );
  console.log(`point multiplication rk·E (validated), µs per call, ${ROUNDS} rounds interleaved:`);
  console.log(formatResults(multiply, 'µs', 1));
  console.log(
    `  noble / node: ${ratio(multiply, '@noble/curves', 'node:crypto (recryptPoint)')}; ` +
      `cache hit / node: ${ratio(multiply, 'point cache hit', 'node:crypto (recryptPoint)')}`,
  );
  points.close();

  const sizes: Array<[string, number]> = [
    ['1 KB', 1024],
    ['1 MB', 1024 * 1024],
    ['10 MB', 10 * 1024 * 1024],
  ];
  console.log(
    '\nsize     recrypt µs (best/median)   wrap MB/s (median)   decrypt+re-encrypt µs (median)   re-encrypt/recrypt',
  );
  for (const [label, size] of sizes) {
    const original = messageOfSize(size);
    const budget = size > 1024 * 1024 ? 600 : 200;
    const stored = wrapMessage(original, groupCert);
    // (a) what the proxy does per FETCH: plan from the stored message, patch the buffer
    // it sends in place (a separate buffer, so that every round plans the stored form)
    const buffer = new Uint8Array(stored);
    const results = await compare(
      [
        {
          name: 'recrypt',
          run: perCall(() => {
            const plan = planRecrypt(stored, 'message', keys);
            if (plan.kind !== 'edits') throw new Error(`bench input not recryptable: ${plan.kind}`);
            applyEdits(buffer, 0, plan.edits);
          }),
        },
        { name: 'wrap', run: perCall(() => wrapMessage(original, groupCert), budget) },
        // The multiplication alone, beside what includes it (the ordering check below).
        { name: 'one multiplication', run: perCall(() => recryptPoint(point, rk)) },
        {
          // (c) a re-encrypting gateway: decrypt with the group key, encrypt to the device
          name: 're-encrypt',
          run: perCall(() => {
            wrapMessage(decryptMessage(stored, { secret: g, recipientId: groupId }), deviceCert);
          }, budget),
        },
      ],
      { rounds: ROUNDS },
    );
    const recrypt = results.get('recrypt')!;
    const wrapUs = results.get('wrap')!.median;
    const reencryptUs = results.get('re-encrypt')!.median;
    const mbps = size / 1024 / 1024 / (wrapUs / 1e6);
    console.log(
      `${label.padEnd(6)} ${fmt(recrypt.best)} / ${fmt(recrypt.median)} ${fmt(mbps).padStart(18)} ${fmt(reencryptUs, 0).padStart(30)} ${fmt(reencryptUs / recrypt.median).padStart(18)}×`,
    );
    // Impossible orderings: recrypting a message includes one multiplication, and
    // re-encrypting includes more than recrypting does.
    checks.check(() => expectNotFaster(results, 're-encrypt', 'recrypt'));
    checks.check(() => expectNotFaster(results, 'recrypt', 'one multiplication'));
  }
  console.log(
    '\n(recrypt = planRecrypt on the whole stored message + applyEdits in place; wrap = wrapMessage, AES-256-CBC + base64 lines)',
  );
  checks.throwIfAny();
}
