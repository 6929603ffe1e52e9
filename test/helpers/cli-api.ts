/**
 * The admin API under test, in-process: a real TLS admin server over a real SQLite key
 * store in a temp data directory, with a clock the test can move; a raw HTTPS client
 * that can send anything (bad headers, oversized bodies, replayed signatures); an owner
 * made with the recrypt core; and a snapshot of the key store for "changes nothing".
 */
import { randomBytes, type KeyObject } from 'node:crypto';
import { request } from 'node:https';
import { startAdminServer, type AdminServer } from '../../src/admin/server.js';
import { SIGNATURE_HEADER, signRequest } from '../../src/admin/request-signing.js';
import { ensureTlsMaterial } from '../../src/config/tls.js';
import { loadOrCreateGatewayKey, openKeyStore, type KeyStore } from '../../src/keystore/index.js';
import {
  issueDeviceCertificate,
  issueGroupCertificate,
  issueOwnerCa,
  privateKeyObject,
  publicPoint,
  randomScalar,
  type Scalar,
} from '../../src/recrypt/index.js';
import { tempDir } from './tmp.js';

export const ADMIN_TOKEN = randomBytes(32).toString('base64url');

export interface ApiGateway {
  keyStore: KeyStore;
  admin: AdminServer;
  cert: string;
  /** Milliseconds added to the real clock (to expire tokens, stale signatures). */
  skew: { ms: number };
  close(): Promise<void>;
}

/** `extra`: optional admin server parts (the moderation routes' store, delivery, notices; a logger). */
export async function startApiGateway(
  extra: Pick<Parameters<typeof startAdminServer>[0], 'moderation' | 'logger'> = {},
): Promise<ApiGateway> {
  const dir = tempDir('recrypt-api-');
  const skew = { ms: 0 };
  const keyStore = await openKeyStore(
    { kind: 'sqlite', path: 'keystore.sqlite' },
    {
      gatewayKey: loadOrCreateGatewayKey(dir.path),
      dataDir: dir.path,
      clock: () => Date.now() + skew.ms,
    },
  );
  const tls = await ensureTlsMaterial(dir.path);
  const admin = await startAdminServer({
    host: '127.0.0.1',
    port: 0,
    tls: { key: tls.key, cert: tls.cert },
    keyStore,
    adminToken: ADMIN_TOKEN,
    // One listener for both audiences: these tests are about the routes, not the split.
    audiences: ['public', 'operator'],
    imapSettings: { host: '127.0.0.1', port: 1993, starttlsPort: 1143 },
    clock: () => Date.now() + skew.ms,
    ...extra,
  });
  return {
    keyStore,
    admin,
    cert: tls.cert,
    skew,
    async close() {
      await admin.close();
      await keyStore.close();
      dir.remove();
    },
  };
}

export interface Signer {
  address: string;
  key: KeyObject;
  timestamp?: number;
  nonce?: string;
}

export interface ApiRequest {
  body?: unknown;
  /** Sent as is instead of JSON of `body`. */
  rawBody?: Buffer;
  token?: string;
  sign?: Signer;
  headers?: Record<string, string>;
}

export interface ApiReply {
  status: number;
  json: Record<string, unknown>;
  /** The signature header that was sent, to replay it. */
  signature?: string;
}

export function signatureFor(method: string, path: string, body: Buffer, signer: Signer): string {
  return signRequest(
    {
      method,
      path,
      body,
      address: signer.address,
      timestamp: signer.timestamp ?? Date.now(),
      nonce: signer.nonce ?? randomBytes(16).toString('base64url'),
    },
    signer.key,
  );
}

export function api(
  gateway: ApiGateway,
  method: string,
  path: string,
  options: ApiRequest = {},
): Promise<ApiReply> {
  const body =
    options.rawBody ??
    (options.body === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(options.body)));
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': body.length,
    ...options.headers,
  };
  if (options.token !== undefined) headers['authorization'] = `Bearer ${options.token}`;
  let signature: string | undefined;
  if (options.sign !== undefined) {
    signature = signatureFor(method, path, body, options.sign);
    headers[SIGNATURE_HEADER] = signature;
  }
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: gateway.admin.port,
        method,
        path,
        headers,
        ca: gateway.cert,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: Record<string, unknown>;
          try {
            json = text.length > 0 ? (JSON.parse(text) as Record<string, unknown>) : {};
          } catch {
            json = { text };
          }
          resolve({ status: res.statusCode ?? 0, json, ...(signature ? { signature } : {}) });
        });
      },
    );
    req.on('error', reject);
    req.setTimeout(15_000, () => req.destroy(new Error('timeout')));
    req.end(body);
  });
}

export interface TestOwner {
  address: string;
  caSecret: Scalar;
  ca: Uint8Array;
  groupSecret: Scalar;
  group: Uint8Array;
  signer: Signer;
}

export async function makeOwner(address: string): Promise<TestOwner> {
  const now = new Date();
  const ca = await issueOwnerCa({ now });
  const groupSecret = randomScalar();
  const group = await issueGroupCertificate({
    ca: ca.certificate,
    caSecret: ca.secret,
    publicKey: publicPoint(groupSecret),
    address,
    now,
  });
  return {
    address,
    caSecret: ca.secret,
    ca: ca.certificate,
    groupSecret,
    group,
    signer: { address, key: privateKeyObject(ca.secret) },
  };
}

export function enrolBody(owner: TestOwner, token: string): Record<string, string> {
  return {
    address: owner.address,
    token,
    ownerCaCertificate: Buffer.from(owner.ca).toString('base64'),
    groupCertificate: Buffer.from(owner.group).toString('base64'),
  };
}

export async function deviceCertificate(
  owner: TestOwner,
  name: string,
  secret: Scalar,
): Promise<Uint8Array> {
  return issueDeviceCertificate({
    ca: owner.ca,
    caSecret: owner.caSecret,
    publicKey: publicPoint(secret),
    address: owner.address,
    name,
    now: new Date(),
  });
}

/** Everything the key store holds about its users, as comparable JSON. */
export async function snapshot(keyStore: KeyStore): Promise<string> {
  const users = [];
  for (const user of await keyStore.listUsers()) {
    const devices = [];
    for (const device of await keyStore.listDevices(user.address)) {
      const keys = [...(await keyStore.keysForDevice(user.address, device.id)).entries()].map(
        ([g, rk]) => [g, rk.toString(16)],
      );
      devices.push({
        ...device,
        certificate: Buffer.from(device.certificate).toString('hex'),
        keys,
      });
    }
    users.push({
      address: user.address,
      enrolment: user.enrolment,
      owner:
        user.owner === null
          ? null
          : {
              groupId: user.owner.groupId,
              ca: Buffer.from(user.owner.ownerCaCertificate).toString('hex'),
            },
      devices,
      profile: await keyStore.getProfile(user.address),
    });
  }
  return JSON.stringify(users);
}
