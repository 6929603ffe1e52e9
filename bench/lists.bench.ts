/**
 * Mailing lists: the CPU one post costs, for N member devices, side by side:
 *  - ours: the post is encrypted once to the list group (wrapMessage); at read time each
 *    device's fetch composes rk_list→member · rk_member→device and recrypts the stored
 *    message (planRecrypt + applyEdits in place, what the proxy does): N scalar
 *    multiplications, no content encryption;
 *  - theirs (Schleuder's model, same primitives): decrypt the post once, then encrypt it
 *    again for each member device's certificate (N content encryptions).
 * Both loops really run N times. Certificates: 16 distinct device certificates are reused
 * round-robin (an encryption's cost does not depend on which P-256 certificate it is for);
 * every device has its own random keys.
 */
import {
  composeKeys,
  issueDeviceCertificate,
  issueGroupCertificate,
  issueOwnerCa,
  publicPoint,
  randomScalar,
  recipientIdOf,
  recryptForCertificate,
  recryptionKey,
  type Scalar,
} from '../src/recrypt/index.js';
import { decryptMessage } from '../src/recrypt/decrypt.js';
import { wrapMessage } from '../src/recrypt/smime.js';
import { applyEdits, planRecrypt } from '../src/recrypt/transform.js';
import type { DeviceRecryptKeys } from '../src/recrypt/types.js';

function postOfSize(size: number): Uint8Array {
  const header = Buffer.from(
    'From: a@example.org\r\nTo: dev@lists.example\r\nSubject: bench\r\nList-Id: <dev.lists.example>\r\n\r\n',
    'latin1',
  );
  const out = new Uint8Array(size);
  out.set(header.subarray(0, size));
  for (let i = header.length; i < size; i++) out[i] = (i * 131 + 7) & 0xff;
  return out;
}

const POST_SIZES = [
  ['100 KB', 100 * 1024],
  ['5 MB', 5 * 1024 * 1024],
] as const;

/** The post as the list stores it, and the CPU its one encryption took. */
function encryptedOnce(size: number, listCert: Uint8Array) {
  const post = postOfSize(size);
  let stored: Uint8Array = new Uint8Array(0);
  const encryptOnce = cpuMs(() => {
    stored = wrapMessage(post, listCert);
  });
  return { stored, encryptOnce };
}

/** CPU milliseconds (user + system) `fn` takes. */
function cpuMs(fn: () => void): number {
  const before = process.cpuUsage();
  fn();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000;
}

const fmt = (n: number, digits = 1): string => n.toFixed(digits).padStart(10);

export async function run(): Promise<void> {
  const now = new Date();
  const ca = await issueOwnerCa({ now });
  const gList = randomScalar();
  const listCert = await issueGroupCertificate({
    ca: ca.certificate,
    caSecret: ca.secret,
    publicKey: publicPoint(gList),
    address: 'dev@lists.example',
    now,
  });
  const listId = recipientIdOf(listCert);
  const listIdHex = Buffer.from(listId).toString('hex');
  const certs: Array<{ der: Uint8Array; id: Uint8Array }> = [];
  for (let i = 0; i < 16; i++) {
    const der = await issueDeviceCertificate({
      ca: ca.certificate,
      caSecret: ca.secret,
      publicKey: publicPoint(randomScalar()),
      address: `m${i}@lists.example`,
      name: `device-${i}`,
      now,
    });
    certs.push({ der, id: recipientIdOf(der) });
  }
  // Every device: its member's list key and its own key (random, as the store holds them).
  const devices: Array<{ listKey: Scalar; deviceKey: Scalar; cert: (typeof certs)[0] }> = [];
  for (let i = 0; i < 1000; i++) {
    const gMember = randomScalar();
    devices.push({
      listKey: recryptionKey(gList, gMember),
      deviceKey: recryptionKey(gMember, randomScalar()),
      cert: certs[i % certs.length]!,
    });
  }

  console.log(
    'size     N     ours CPU ms  theirs CPU ms   CPU ratio   ours bytes enc.  theirs bytes enc.  bytes ratio',
  );
  for (const [label, size] of POST_SIZES) {
    const { stored, encryptOnce } = encryptedOnce(size, listCert);
    const buffer = new Uint8Array(stored);
    for (const n of [10, 100, 1000]) {
      const reads = cpuMs(() => {
        for (let i = 0; i < n; i++) {
          const d = devices[i]!;
          const keys: DeviceRecryptKeys = {
            deviceId: d.cert.id,
            wrapEncoding: 'absent',
            keys: new Map([[listIdHex, composeKeys(d.listKey, d.deviceKey)]]),
          };
          const plan = planRecrypt(stored, 'message', keys);
          if (plan.kind !== 'edits') throw new Error(`not recryptable: ${plan.kind}`);
          applyEdits(buffer, 0, plan.edits);
        }
      });
      const theirs = cpuMs(() => {
        const plain = decryptMessage(stored, { secret: gList, recipientId: listId });
        for (let i = 0; i < n; i++) wrapMessage(plain, devices[i]!.cert.der);
      });
      const ours = encryptOnce + reads;
      console.log(
        `${label.padEnd(6)} ${String(n).padStart(5)} ${fmt(ours)} ${fmt(theirs, 1).padStart(14)} ${fmt(theirs / ours, 1).padStart(10)}× ${String(size).padStart(16)} ${String(n * size).padStart(18)} ${String(n).padStart(11)}×`,
      );
    }
  }
  console.log(
    '\n(ours = one wrapMessage to the list group + N × (composeKeys + planRecrypt + applyEdits);' +
      ' theirs = one decryptMessage + N × wrapMessage; CPU = process.cpuUsage user+system)',
  );
  await remoteMembers(gList, listCert, listIdHex, certs, devices);
}

/**
 * Remote members: each gets a copy sent over SMTP, so the copy is made at post time. Ours
 * rebuilds the recipient infos for their certificate and copies the encrypted content
 * (recryptForCertificate); theirs encrypts the content again for them.
 */
async function remoteMembers(
  gList: Scalar,
  listCert: Uint8Array,
  listIdHex: string,
  certs: Array<{ der: Uint8Array; id: Uint8Array }>,
  devices: Array<{ listKey: Scalar }>,
): Promise<void> {
  console.log('\nremote members (copies made at post time, sent by the outbound queue)');
  console.log(
    'size     N     ours CPU ms  theirs CPU ms   CPU ratio   ours bytes enc.  theirs bytes enc.',
  );
  for (const [label, size] of POST_SIZES) {
    const { stored, encryptOnce } = encryptedOnce(size, listCert);
    for (const n of [10, 100]) {
      const copies = cpuMs(() => {
        for (let i = 0; i < n; i++) {
          const keys = new Map([[listIdHex, devices[i]!.listKey]]);
          recryptForCertificate(stored, keys, certs[i % certs.length]!.der);
        }
      });
      const theirs = cpuMs(() => {
        const plain = decryptMessage(stored, {
          secret: gList,
          recipientId: recipientIdOf(listCert),
        });
        for (let i = 0; i < n; i++) wrapMessage(plain, certs[i % certs.length]!.der);
      });
      const ours = encryptOnce + copies;
      console.log(
        `${label.padEnd(6)} ${String(n).padStart(5)} ${fmt(ours)} ${fmt(theirs, 1).padStart(14)} ${fmt(theirs / ours, 1).padStart(10)}× ${String(size).padStart(16)} ${String(n * size).padStart(18)}`,
      );
    }
  }
}
