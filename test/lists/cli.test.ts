/**
 * Through the real `recrypt` processes: a list owner and a member, each with
 * their own owner key file, against a gateway made by `recrypt init`. create → invite →
 * accept (member) → admit (owner) → policy → remove → rotate, and what the gateway holds.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readOwnerKeyFile } from '../../src/owner/key-file.js';
import { readListKeyFile } from '../../src/owner/list-key-file.js';
import { invertScalar, multiplyScalars } from '../../src/recrypt/index.js';
import {
  PASSPHRASE,
  enrolViaCli,
  startCliWorld,
  type CliWorld,
  type EnrolledOwner,
} from '../helpers/cli-flow.js';

const LIST = 'team@example.org';

describe('recrypt list …', () => {
  let world: CliWorld;
  let owner: EnrolledOwner;
  let alice: EnrolledOwner;

  beforeAll(async () => {
    world = await startCliWorld();
    // Two people, each enrolled by their own CLI processes: at once.
    [owner, alice] = await Promise.all([
      enrolViaCli(world, 'lead@example.org'),
      enrolViaCli(world, 'alice@example.org'),
    ]);
  });
  afterAll(async () => {
    await world?.close();
  });

  it('runs a whole list life: create, join by blinded issue, policy, remove, rotate', async () => {
    const created = await owner.run([
      'list',
      'create',
      LIST,
      '--name',
      'Team',
      '--subject-tag',
      '[team]',
    ]);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    const listFile = join(owner.dir, `${LIST}.list.key`);
    expect(existsSync(listFile)).toBe(true);

    const invited = await owner.run(['list', 'invite', LIST, alice.address]);
    expect(invited.code).toBe(0);
    const invite = invited.stdout.trim().split('\n').at(-1)!;
    const accepted = await alice.run(['list', 'accept', LIST, invite]);
    expect(accepted.stderr).toBe('');
    expect(accepted.code).toBe(0);
    const joinToken = accepted.stdout.trim().split('\n').at(-1)!;
    expect(joinToken).toMatch(/^rlj1\./);
    const admitted = await owner.run(['list', 'admit', joinToken]);
    expect(admitted.stderr).toBe('');
    expect(admitted.stdout).toContain(`${alice.address} joined ${LIST}`);

    const ownerKey = await readOwnerKeyFile(owner.keyFile, PASSPHRASE);
    const aliceKey = await readOwnerKeyFile(alice.keyFile, PASSPHRASE);
    const secrets = readListKeyFile(listFile, ownerKey);
    const keyStore = world.gateway.keyStore;
    expect((await keyStore.listKeysForMember(alice.address)).map((k) => k.rk)).toEqual([
      multiplyScalars(secrets.groups[0]!.secret, invertScalar(aliceKey.groupSecret)),
    ]);

    // A read, the owner's change and alice's refused one: independent, at once.
    const [shown, policy, refused] = await Promise.all([
      owner.run(['list', 'show', LIST]),
      owner.run(['list', 'policy', LIST, 'announce']),
      alice.run(['list', 'policy', LIST, 'open']),
    ]);
    expect(shown.stdout).toContain(`member ${alice.address}`);
    expect(policy.code).toBe(0);
    expect((await keyStore.getList(LIST))?.policy).toBe('announce');
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/not the list owner/);

    const removed = await owner.run(['list', 'remove', LIST, alice.address]);
    expect(removed.stdout).toContain(`recrypt list rotate ${LIST}`);
    expect(await keyStore.listKeysForMember(alice.address)).toEqual([]);
    const rotated = await owner.run(['list', 'rotate', LIST]);
    expect(rotated.stderr).toBe('');
    const after = readListKeyFile(listFile, ownerKey);
    expect(after.groups).toHaveLength(2);
    expect((await keyStore.getList(LIST))?.group.groupId).toBe(after.groups[1]!.groupId);
  });
});
