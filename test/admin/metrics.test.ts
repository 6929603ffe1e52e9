/**
 * The admin server's request counter: labelled by method, route pattern and status, so
 * an address in the path (`/v1/users/<address>`, profiles) never becomes a label value.
 */
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAdminMetrics } from '../../src/admin/metrics.js';
import { startAdminServer } from '../../src/admin/server.js';
import { ensureTlsMaterial } from '../../src/config/tls.js';
import { loadOrCreateGatewayKey, openKeyStore } from '../../src/keystore/index.js';
import { ADMIN_TOKEN, api, type ApiGateway } from '../helpers/cli-api.js';
import { tempDir } from '../helpers/tmp.js';

const ALICE = 'alice@example.org';

describe('admin server metrics', () => {
  const dir = tempDir('recrypt-admin-metrics-');
  const registry = new Registry();
  const metrics = createAdminMetrics(registry);
  let gw: ApiGateway;

  beforeAll(async () => {
    const keyStore = await openKeyStore(
      { kind: 'sqlite', path: 'keystore.sqlite' },
      { gatewayKey: loadOrCreateGatewayKey(dir.path), dataDir: dir.path },
    );
    const tls = await ensureTlsMaterial(dir.path);
    const admin = await startAdminServer({
      host: '127.0.0.1',
      port: 0,
      tls: { key: tls.key, cert: tls.cert },
      keyStore,
      adminToken: ADMIN_TOKEN,
      audiences: ['public', 'operator'],
      imapSettings: { host: '127.0.0.1', port: 1993, starttlsPort: 1143 },
      metrics: registry,
      requestMetrics: metrics,
    });
    gw = {
      keyStore,
      admin,
      cert: tls.cert,
      skew: { ms: 0 },
      async close() {
        await admin.close();
        await keyStore.close();
      },
    };
  });

  afterAll(async () => {
    await gw?.close();
    dir.remove();
  });

  const count = async (method: string, route: string, status: number) =>
    (await metrics.requests.get()).values.find(
      (v) =>
        v.labels.method === method &&
        v.labels.route === route &&
        v.labels.status === String(status),
    )?.value ?? 0;

  it('counts requests by route pattern and status, with no address in any label', async () => {
    const auth = { token: ADMIN_TOKEN };
    expect((await api(gw, 'POST', '/v1/users', { ...auth, body: { address: ALICE } })).status).toBe(
      201,
    );
    expect((await api(gw, 'POST', '/v1/users', { ...auth, body: { address: ALICE } })).status).toBe(
      409,
    );
    expect((await api(gw, 'POST', `/v1/users/${ALICE}/token`, auth)).status).toBe(201);
    expect((await api(gw, 'DELETE', `/v1/users/${encodeURIComponent(ALICE)}`, auth)).status).toBe(
      204,
    );
    expect((await api(gw, 'DELETE', '/v1/users/bob@example.org', auth)).status).toBe(404);
    expect((await api(gw, 'GET', '/v1/no/such/endpoint/carol@example.org')).status).toBe(404);
    expect((await api(gw, 'GET', `/.well-known/mail-profile/${ALICE}`)).status).toBe(404);
    expect((await api(gw, 'GET', `/.well-known/mail-profile/${ALICE}/group.cer`)).status).toBe(404);
    expect((await api(gw, 'GET', '/healthz')).status).toBe(200);
    expect((await api(gw, 'GET', '/elsewhere/dave@example.org')).status).toBe(404);

    expect(await count('POST', '/v1/users', 201)).toBe(1);
    expect(await count('POST', '/v1/users', 409)).toBe(1);
    expect(await count('POST', '/v1/users/:param/token', 201)).toBe(1);
    expect(await count('DELETE', '/v1/users/:param', 204)).toBe(1);
    expect(await count('DELETE', '/v1/users/:param', 404)).toBe(1);
    expect(await count('GET', '/v1/unknown', 404)).toBe(1);
    expect(await count('GET', '/.well-known/mail-profile/:address', 404)).toBe(1);
    expect(await count('GET', '/.well-known/mail-profile/:address/group.cer', 404)).toBe(1);
    expect(await count('GET', '/healthz', 200)).toBe(1);
    expect(await count('GET', 'other', 404)).toBe(1);
    expect(await registry.metrics()).not.toMatch(/example\.org|%40/);
  });
});
