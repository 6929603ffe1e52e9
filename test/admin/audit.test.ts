/**
 * The audit log through the real CLI and the real admin server: every admin and owner
 * action — successful or refused — leaves one structured line naming actor, action,
 * target and outcome, and no line holds a token, a password or a request body.
 */
import { request } from 'node:https';
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/admin/audit.js';
import {
  addDeviceViaCli,
  addUserViaCli,
  enrolViaCli,
  startCliWorld,
  type AddedDeviceOutput,
  type CliWorld,
  type EnrolledOwner,
} from '../helpers/cli-flow.js';

const lines: string[] = [];
const sink = new Writable({
  write(chunk: Buffer, _encoding, done) {
    lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    done();
  },
});

function auditRecords(): AuditRecord[] {
  return lines
    .map((line) => JSON.parse(line) as { audit?: AuditRecord })
    .flatMap((entry) => (entry.audit ? [entry.audit] : []));
}

/** To the operator listener, where the admin-token routes are (docs/admin-api.md). */
function post(world: CliWorld, path: string, token: string, body: object): Promise<number> {
  const url = new URL(path, world.gateway.operatorOrigin);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        ca: readFileSync(world.gateway.certFile),
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      },
      (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.once('error', reject);
    req.end(JSON.stringify(body));
  });
}

describe('audit log', () => {
  let world: CliWorld;
  let owner: EnrolledOwner;
  let laptop: AddedDeviceOutput;

  beforeAll(async () => {
    world = await startCliWorld(undefined, pino({ level: 'info' }, sink));
    owner = await enrolViaCli(world, 'audited@example.org', 'Audited');
    laptop = await addDeviceViaCli(owner, 'laptop');
    const revoke = await owner.run(['device', 'revoke', 'laptop']);
    expect(revoke.code).toBe(0);
  });
  afterAll(async () => {
    await world?.close();
  });

  it('records the operator, the enrolment and the owner actions with their targets', () => {
    const records = auditRecords();
    expect(records).toContainEqual({
      actor: 'operator',
      action: 'POST /v1/users',
      target: 'audited@example.org',
      status: 201,
      outcome: 'ok',
    });
    expect(records).toContainEqual(
      expect.objectContaining({
        actor: 'enrolment:audited@example.org',
        action: 'POST /v1/enrol',
        target: 'audited@example.org',
        outcome: 'ok',
      }),
    );
    const ownerActions = records.filter((r) => r.actor === 'owner:audited@example.org');
    expect(ownerActions.map((r) => r.action)).toEqual(
      expect.arrayContaining([
        'POST /v1/owner/devices',
        'POST /v1/owner/devices/:param/revoke',
        'PUT /v1/owner/profile',
      ]),
    );
    expect(ownerActions.every((r) => r.outcome === 'ok')).toBe(true);
    // Reads are not actions.
    expect(records.some((r) => r.action.startsWith('GET '))).toBe(false);
  });

  it('records refused attempts as unauthenticated, with what they aimed at', async () => {
    const status = await post(world, '/v1/users', 'not-the-admin-token', {
      address: 'mallory@example.org',
    });
    expect(status).toBe(401);
    const refused = auditRecords().filter((r) => r.target === 'mallory@example.org');
    expect(refused).toEqual([
      {
        actor: 'unauthenticated',
        action: 'POST /v1/users',
        target: 'mallory@example.org',
        status: 401,
        outcome: 'refused',
      },
    ]);
  });

  it('records token issue, user removal, list changes and moderation', async () => {
    const list = 'audit-team@example.org';
    // The operator's steps and the owner's are independent (each in order, the order the
    // records must show): both sequences run at once.
    const operatorSteps = async () => {
      const added = await addUserViaCli(world, 'temp@example.org');
      expect((await world.operator(['user', 'token', 'temp@example.org'])).code).toBe(0);
      expect((await world.operator(['user', 'remove', 'temp@example.org'])).code).toBe(0);
      return added;
    };
    const ownerSteps = async () => {
      const created = await owner.run(['list', 'create', list, '--policy', 'members']);
      expect(created.stderr).toBe('');
      expect(created.code).toBe(0);
      expect((await owner.run(['list', 'policy', list, 'moderated'])).code).toBe(0);
      // Moderation of a post that is not held: refused, and recorded as such.
      const rejected = await owner.run(['list', 'reject', list, 'ffffffffffffffff']);
      expect(rejected.code).toBe(1);
    };
    const [temp] = await Promise.all([operatorSteps(), ownerSteps()]);

    const records = auditRecords();
    const operatorOn = (target: string) =>
      records.filter((r) => r.actor === 'operator' && r.target === target).map((r) => r.action);
    expect(operatorOn('temp@example.org')).toEqual([
      'POST /v1/users',
      'POST /v1/users/:param/token',
      'DELETE /v1/users/:param',
    ]);
    const listActions = records.filter(
      (r) => r.actor === 'owner:audited@example.org' && r.target === list,
    );
    expect(listActions.map((r) => r.action)).toEqual([
      'POST /v1/owner/lists',
      'PATCH /v1/owner/lists/:param',
      'POST /v1/owner/lists/:param/held/:param/reject',
    ]);
    // The first two succeeded; the moderation attempt did not (no such post; this world
    // has no moderation services at all, 503): recorded all the same, as not done.
    expect(listActions.map((r) => r.outcome).slice(0, 2)).toEqual(['ok', 'ok']);
    const moderation = listActions[2]!;
    expect(moderation.status).toBeGreaterThanOrEqual(400);
    expect(moderation.outcome).toBe(moderation.status >= 500 ? 'failed' : 'refused');
    expect(lines.join('\n')).not.toContain(temp.token);
  });

  it('holds no token, password or body in any line', () => {
    const everything = lines.join('\n');
    const adminToken = readFileSync(world.gateway.config.dataDir + '/admin.token', 'utf8').trim();
    for (const secret of [
      adminToken,
      owner.token,
      laptop.devicePassword,
      laptop.p12Password,
      'not-the-admin-token',
    ]) {
      expect(everything).not.toContain(secret);
    }
  });
});
