/**
 * An owner keeps working across the gateway's certificate renewals: the self-signed
 * certificate given at `owner init --ca` is trusted by its key, so a certificate
 * re-issued with the same key (new name, new serial, new dates) is accepted; a new key is
 * refused with the command that re-points the key file, and `recrypt owner gateway`
 * re-points it only at a gateway that holds this owner's enrolment. Real CLI processes,
 * the real admin server, certificates made by openssl.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBinary } from '../helpers/binaries.js';
import {
  enrolViaCli,
  startCliWorld,
  type CliWorld,
  type EnrolledOwner,
} from '../helpers/cli-flow.js';

describe('the gateway identity an owner key file trusts', () => {
  const openssl = requireBinary('openssl');
  let world: CliWorld;
  let other: CliWorld;
  let owner: EnrolledOwner;
  let keyFile: string;
  let certFile: string;

  /** A self-signed certificate for `keyPem`'s key (a fresh key when omitted). */
  function selfSigned(name: string, keyPem?: string): { key: string; cert: string; file: string } {
    const keyPath = join(world.root, `${name}.key.pem`);
    if (keyPem === undefined) {
      execFileSync(openssl, [
        'ecparam',
        '-name',
        'prime256v1',
        '-genkey',
        '-noout',
        '-out',
        keyPath,
      ]);
    } else {
      writeFileSync(keyPath, keyPem);
    }
    const file = join(world.root, `${name}.cert.pem`);
    execFileSync(openssl, [
      'req',
      '-new',
      '-x509',
      '-key',
      keyPath,
      '-subj',
      `/CN=${name}`,
      '-days',
      '30',
      '-addext',
      `subjectAltName=DNS:${name}`,
      '-out',
      file,
    ]);
    return { key: readFileSync(keyPath, 'utf8'), cert: readFileSync(file, 'utf8'), file };
  }

  beforeAll(async () => {
    // Two gateways that know nothing of each other: made at once, the owner enrolled at
    // the first while the second starts.
    const first = startCliWorld();
    const second = startCliWorld();
    // Both are closed after the tests, also when the other failed to start.
    void first.then(
      (w) => (world = w),
      () => undefined,
    );
    void second.then(
      (w) => (other = w),
      () => undefined,
    );
    [owner] = await Promise.all([first.then((w) => enrolViaCli(w, 'pinned@example.org')), second]);
    keyFile = owner.keyFile;
    certFile = world.gateway.certFile;
  });
  afterAll(async () => {
    await world?.close();
    await other?.close();
  });

  it('accepts a certificate re-issued with the same key under another name', async () => {
    const original = readFileSync(join(world.gateway.config.dataDir, 'tls', 'key.pem'), 'utf8');
    const renewed = selfSigned('renewed.example', original);
    expect(renewed.cert).not.toBe(readFileSync(certFile, 'utf8'));
    world.gateway.admin.setTls({ key: renewed.key, cert: renewed.cert });
    const list = await owner.run(['device', 'list']);
    expect(list.stderr).toBe('');
    expect(list.code).toBe(0);
  });

  it('refuses a new key, naming the command that re-points the key file', async () => {
    const replaced = selfSigned('replaced.example');
    world.gateway.admin.setTls({ key: replaced.key, cert: replaced.cert });
    const before = readFileSync(keyFile);
    const list = await owner.run(['device', 'list']);
    expect(list.code).toBe(1);
    expect(list.stderr).toMatch(/presents another TLS key/);
    expect(list.stderr).toContain(`recrypt owner gateway ${world.gateway.origin} --ca`);
    expect(readFileSync(keyFile).equals(before)).toBe(true);

    // The owner checked the new certificate with the operator and re-points the file.
    const repoint = await owner.run([
      'owner',
      'gateway',
      world.gateway.origin,
      '--ca',
      replaced.file,
    ]);
    expect(repoint.stderr).toBe('');
    expect(repoint.code).toBe(0);
    expect(repoint.stdout).toContain(`gateway for pinned@example.org: ${world.gateway.origin}`);
    const after = await owner.run(['device', 'list']);
    expect(after.stderr).toBe('');
    expect(after.code).toBe(0);
  });

  it('re-points only at a gateway that holds this enrolment; the key file stays as it was', async () => {
    const before = readFileSync(keyFile);
    // Both refused, the file unchanged: the two commands at once.
    const [repoint, bad] = await Promise.all([
      owner.run(['owner', 'gateway', other.gateway.origin, '--ca', other.gateway.certFile]),
      // A URL that is no gateway origin is refused before anything is read.
      owner.run(['owner', 'gateway', 'http://example.org']),
    ]);
    expect(repoint.code).toBe(1);
    expect(repoint.stderr).toMatch(
      /refused: request signature not accepted|does not hold this account/,
    );
    expect(readFileSync(keyFile).equals(before)).toBe(true);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/expected https:\/\/host\[:port\]/);
  });
});
