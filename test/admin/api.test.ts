/**
 * The admin API over real TLS with a real SQLite key store: the operator's endpoints and
 * enrolment, with the bad inputs the issue names — missing and wrong admin tokens,
 * malformed addresses and bodies, oversized bodies (413), unknown users (404), duplicates
 * (409), wrong, used and expired enrolment tokens (401) — each answered with a clear
 * reason and leaving the key store exactly as it was. api-owner.test.ts covers the
 * owner-signed endpoints.
 */
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENROLMENT_TOKEN_TTL_MS } from '../../src/admin/api.js';
import {
  ADMIN_TOKEN,
  api,
  enrolBody,
  makeOwner,
  snapshot,
  startApiGateway,
  type ApiGateway,
  type TestOwner,
} from '../helpers/cli-api.js';
import { fixture, randomRecipientIdHex, randomScalar } from '../keystore/fixtures.js';

const ALICE = 'alice@example.org';

describe('admin API: operator and enrolment', () => {
  let gw: ApiGateway;
  let alice: TestOwner;

  /** Runs `attempt` and checks that the key store did not change. */
  async function unchanged<T>(attempt: () => Promise<T>): Promise<T> {
    return unchangedIn(gw, attempt);
  }

  beforeAll(async () => {
    gw = await startApiGateway();
    alice = await makeOwner(ALICE);
  });
  afterAll(async () => {
    await gw?.close();
  });

  describe('operator endpoints', () => {
    it('refuse a missing or wrong admin token with 401', async () => {
      for (const token of [undefined, '', 'not-the-token', `${ADMIN_TOKEN}x`]) {
        const reply = await unchanged(() =>
          api(gw, 'POST', '/v1/users', {
            body: { address: ALICE },
            ...(token !== undefined ? { token } : {}),
          }),
        );
        expect(reply.status).toBe(401);
        expect(reply.json.error).toBe('admin token not accepted');
      }
      expect((await api(gw, 'GET', '/v1/users')).status).toBe(401);
    });

    it('add a user and return a one-time token; list it; refuse a duplicate with 409', async () => {
      const added = await api(gw, 'POST', '/v1/users', {
        token: ADMIN_TOKEN,
        body: { address: ALICE, name: 'Alice' },
      });
      expect(added.status).toBe(201);
      expect(added.json).toMatchObject({ address: ALICE, name: 'Alice', enrolment: 'pending' });
      expect(added.json.enrolmentToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
      (gw as ApiGateway & { aliceToken?: string }).aliceToken = added.json.enrolmentToken as string;
      const dup = await unchanged(() =>
        api(gw, 'POST', '/v1/users', { token: ADMIN_TOKEN, body: { address: ALICE } }),
      );
      expect(dup.status).toBe(409);
      const list = await api(gw, 'GET', '/v1/users', { token: ADMIN_TOKEN });
      expect(list.status).toBe(200);
      expect(list.json.users).toEqual([
        expect.objectContaining({ address: ALICE, enrolment: 'pending', activeDevices: 0 }),
      ]);
    });

    it('refuse malformed addresses and bodies with 400', async () => {
      const bad = [
        '',
        'no-at-sign',
        '@example.org',
        'alice@',
        'a b@example.org',
        'alice@exa_mple.org',
        'al{ice}@example.org',
        `${'x'.repeat(250)}@example.org`,
        'ünï@example.org',
      ];
      for (const address of bad) {
        const reply = await unchanged(() =>
          api(gw, 'POST', '/v1/users', { token: ADMIN_TOKEN, body: { address } }),
        );
        expect(reply.status, address).toBe(400);
        expect(typeof reply.json.error).toBe('string');
      }
      for (const rawBody of [
        Buffer.from('{not json'),
        Buffer.from('[1,2]'),
        Buffer.from('"text"'),
        Buffer.from('{"address": 42}'),
      ]) {
        const reply = await unchanged(() =>
          api(gw, 'POST', '/v1/users', { token: ADMIN_TOKEN, rawBody }),
        );
        expect(reply.status).toBe(400);
      }
      const remove = await unchanged(() =>
        api(gw, 'DELETE', `/v1/users/${encodeURIComponent('not an address')}`, {
          token: ADMIN_TOKEN,
        }),
      );
      expect(remove.status).toBe(400);
    });

    it('refuse an oversized body with 413', async () => {
      const rawBody = Buffer.from(JSON.stringify({ address: ALICE, name: 'x'.repeat(300 * 1024) }));
      const reply = await unchanged(() =>
        api(gw, 'POST', '/v1/users', { token: ADMIN_TOKEN, rawBody }),
      );
      expect(reply.status).toBe(413);
    });

    it('answer 404 for an unknown user, 404/405 for unknown endpoints and methods', async () => {
      expect(
        (
          await unchanged(() =>
            api(gw, 'DELETE', '/v1/users/nobody%40example.org', { token: ADMIN_TOKEN }),
          )
        ).status,
      ).toBe(404);
      expect(
        (await api(gw, 'POST', '/v1/users/nobody%40example.org/token', { token: ADMIN_TOKEN }))
          .status,
      ).toBe(404);
      expect((await api(gw, 'GET', '/v1/nothing', { token: ADMIN_TOKEN })).status).toBe(404);
      expect((await api(gw, 'PATCH', '/v1/users', { token: ADMIN_TOKEN })).status).toBe(405);
    });
  });

  describe('enrolment', () => {
    it('refuses a wrong token, an unknown user and bad certificates, changing nothing', async () => {
      const token = (gw as ApiGateway & { aliceToken?: string }).aliceToken!;
      const wrong = await unchanged(() =>
        api(gw, 'POST', '/v1/enrol', {
          body: enrolBody(alice, randomBytes(32).toString('base64url')),
        }),
      );
      expect(wrong.status).toBe(401);
      expect(wrong.json.error).toBe('enrolment token not accepted');
      const bob = await makeOwner('bob@example.org');
      const unknown = await unchanged(() =>
        api(gw, 'POST', '/v1/enrol', { body: enrolBody(bob, token) }),
      );
      expect(unknown.status).toBe(404);
      // Bob's certificates with Alice's address: the group certificate names bob.
      const otherAddress = await unchanged(() =>
        api(gw, 'POST', '/v1/enrol', { body: { ...enrolBody(bob, token), address: ALICE } }),
      );
      expect(otherAddress.status).toBe(400);
      expect(otherAddress.json.error).toMatch(/groupCertificate/);
      // Alice's group certificate under Bob's CA.
      const mixed = await unchanged(() =>
        api(gw, 'POST', '/v1/enrol', {
          body: {
            ...enrolBody(alice, token),
            ownerCaCertificate: Buffer.from(bob.ca).toString('base64'),
          },
        }),
      );
      expect(mixed.status).toBe(400);
      const notDer = await unchanged(() =>
        api(gw, 'POST', '/v1/enrol', {
          body: { ...enrolBody(alice, token), groupCertificate: 'AAAA' },
        }),
      );
      expect(notDer.status).toBe(400);
      const notBase64 = await unchanged(() =>
        api(gw, 'POST', '/v1/enrol', {
          body: { ...enrolBody(alice, token), groupCertificate: '***' },
        }),
      );
      expect(notBase64.status).toBe(400);
    });

    it('enrols once with the right token; the used token is refused with 401', async () => {
      const token = (gw as ApiGateway & { aliceToken?: string }).aliceToken!;
      const enrolled = await api(gw, 'POST', '/v1/enrol', { body: enrolBody(alice, token) });
      expect(enrolled.status).toBe(200);
      expect(enrolled.json).toMatchObject({
        address: ALICE,
        enrolment: 'enrolled',
        imap: { host: '127.0.0.1', port: 1993, starttlsPort: 1143 },
      });
      const again = await unchanged(() =>
        api(gw, 'POST', '/v1/enrol', { body: enrolBody(alice, token) }),
      );
      expect(again.status).toBe(401);
    });

    it('gives an enrolled account a new token only with an explicit reset, which revokes its devices and is logged', async () => {
      const logs: string[] = [];
      const sink = new Writable({
        write(chunk: Buffer, _encoding, callback) {
          logs.push(chunk.toString());
          callback();
        },
      });
      const own = await startApiGateway({ logger: pino({ level: 'info' }, sink) });
      try {
        const dana = await makeOwner('dana@example.org');
        const path = `/v1/users/${encodeURIComponent(dana.address)}/token`;
        const added = await api(own, 'POST', '/v1/users', {
          token: ADMIN_TOKEN,
          body: { address: dana.address },
        });
        // While pending, a new token needs no reset.
        const second = await api(own, 'POST', path, { token: ADMIN_TOKEN });
        expect(second.status).toBe(201);
        expect(added.json.enrolmentToken).not.toBe(second.json.enrolmentToken);
        const enrolled = await api(own, 'POST', '/v1/enrol', {
          body: enrolBody(dana, second.json.enrolmentToken as string),
        });
        expect(enrolled.status).toBe(200);
        const device = await own.keyStore.addDevice({
          ownerAddress: dana.address,
          name: 'laptop',
          certificate: fixture('device-a.der'),
          deviceId: randomRecipientIdHex(),
          client: 'standard',
          credentialHash: `scrypt$14$8$1$${'A'.repeat(22)}$${'B'.repeat(43)}`,
          keys: new Map([[enrolled.json.groupId as string, randomScalar()]]),
        });

        const refused = await unchangedIn(own, () =>
          api(own, 'POST', path, { token: ADMIN_TOKEN }),
        );
        expect(refused.status).toBe(409);
        expect(refused.json.error).toMatch(/already enrolled.*reset/);
        for (const body of [{ reset: false }, {}]) {
          const same = await unchangedIn(own, () =>
            api(own, 'POST', path, { token: ADMIN_TOKEN, body }),
          );
          expect(same.status).toBe(409);
        }
        const bad = await unchangedIn(own, () =>
          api(own, 'POST', path, { token: ADMIN_TOKEN, body: { reset: 'yes' } }),
        );
        expect(bad.status).toBe(400);
        expect(logs.join('')).not.toMatch(/enrolment reset/);

        const reset = await api(own, 'POST', path, { token: ADMIN_TOKEN, body: { reset: true } });
        expect(reset.status).toBe(201);
        expect(reset.json).toMatchObject({ address: dana.address, reset: true, revokedDevices: 1 });
        expect((await own.keyStore.getDevice(dana.address, device.id))?.revoked).not.toBeNull();
        expect(await own.keyStore.getUser(dana.address)).toMatchObject({ enrolment: 'pending' });
        const logged = logs.map((line) => JSON.parse(line) as Record<string, unknown>);
        expect(logged).toContainEqual(
          expect.objectContaining({
            level: 40,
            address: dana.address,
            revokedDevices: [device.id],
            msg: expect.stringMatching(/enrolment reset/),
          }),
        );
        // The owner (or whoever now holds the token) enrols again, with new keys.
        const again = await makeOwner(dana.address);
        expect(
          (
            await api(own, 'POST', '/v1/enrol', {
              body: enrolBody(again, reset.json.enrolmentToken as string),
            })
          ).status,
        ).toBe(200);
      } finally {
        await own.close();
      }
    });

    it('refuses an expired token with 401', async () => {
      const carol = await makeOwner('carol@example.org');
      const added = await api(gw, 'POST', '/v1/users', {
        token: ADMIN_TOKEN,
        body: { address: carol.address },
      });
      gw.skew.ms = ENROLMENT_TOKEN_TTL_MS + 60_000;
      try {
        const expired = await unchanged(() =>
          api(gw, 'POST', '/v1/enrol', {
            body: enrolBody(carol, added.json.enrolmentToken as string),
          }),
        );
        expect(expired.status).toBe(401);
      } finally {
        gw.skew.ms = 0;
      }
      // A fresh token from the operator works.
      const fresh = await api(gw, 'POST', `/v1/users/${encodeURIComponent(carol.address)}/token`, {
        token: ADMIN_TOKEN,
      });
      expect(fresh.status).toBe(201);
      expect(
        (
          await api(gw, 'POST', '/v1/enrol', {
            body: enrolBody(carol, fresh.json.enrolmentToken as string),
          })
        ).status,
      ).toBe(200);
    });
  });
});

/** Runs `attempt` and checks that the gateway's key store did not change. */
async function unchangedIn<T>(gateway: ApiGateway, attempt: () => Promise<T>): Promise<T> {
  const before = await snapshot(gateway.keyStore);
  const result = await attempt();
  expect(await snapshot(gateway.keyStore)).toBe(before);
  return result;
}
