/**
 * Passphrases typed at a terminal: the prompt goes to the terminal, the typed text is not
 * echoed, `owner init` asks twice and refuses two different answers without writing
 * anything; a passphrase file works for scripts.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  PASSPHRASE,
  addUserViaCli,
  enrolViaCli,
  startCliWorld,
  type CliWorld,
  type EnrolledOwner,
} from '../helpers/cli-flow.js';
import { runCliOnTty } from '../helpers/cli-pty.js';
import { runCli } from '../helpers/cli-run.js';

describe('passphrase prompts', () => {
  let world: CliWorld;
  let owner: EnrolledOwner;

  beforeAll(async () => {
    world = await startCliWorld();
    owner = await enrolViaCli(world, 'tess@example.org');
  });
  afterAll(async () => {
    await world?.close();
  });

  it('reads the passphrase from the terminal without echoing it', async () => {
    const result = await runCliOnTty(['device', 'list'], [PASSPHRASE], { cwd: owner.dir });
    expect(result.code).toBe(0);
    expect(result.output).toContain('Passphrase: ');
    expect(result.output).toContain('no devices');
    expect(result.output).not.toContain(PASSPHRASE);
  });

  it('owner init asks twice and refuses two different passphrases, writing nothing', async () => {
    const { ownerArgs } = await addUserViaCli(world, 'uma@example.org');
    const result = await runCliOnTty(
      [...ownerArgs, '--key-file', 'uma.key'],
      ['first one', 'second one'],
      { cwd: owner.dir },
    );
    expect(result.code).toBe(1);
    expect(result.output).toContain('Repeat the passphrase: ');
    expect(result.output).toContain('recrypt: the two passphrases differ');
    expect(result.output).not.toContain('first one');
    expect(existsSync(join(owner.dir, 'uma.key'))).toBe(false);
    expect((await world.gateway.keyStore.getUser('uma@example.org'))?.enrolment).toBe('pending');

    // The same command with a passphrase file succeeds: the token was not used up.
    writeFileSync(join(owner.dir, 'uma.pass'), 'uma passphrase\n');
    const scripted = await runCli(
      [...ownerArgs, '--key-file', 'uma.key', '--passphrase-file', 'uma.pass'],
      { cwd: owner.dir },
    );
    expect(scripted.stderr).toBe('');
    expect(scripted.code).toBe(0);
    expect((await world.gateway.keyStore.getUser('uma@example.org'))?.enrolment).toBe('enrolled');
  });
});
