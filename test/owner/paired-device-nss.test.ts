/**
 * A device that paired itself (`device join`, its own d) reads mail through the proxy with
 * `openssl cms` and with NSS — the modern NSS Debian's Thunderbird bundles (the system
 * NSS 3.87 lacks ECDH S/MIME, docs/design.md §3), driven by test/helpers/nss-cms-decrypt.py
 * through libsmime3's own CMS decoder, with the device's .p12 imported by pk12util into an
 * NSS database made by certutil. It keeps reading after a fast rotation; another
 * device's key reads neither copy.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBinary } from '../helpers/binaries.js';
import { parseDeviceAdd } from '../helpers/cli-flow.js';
import { runCli } from '../helpers/cli-run.js';
import { waitFor } from '../helpers/gateway-process.js';
import {
  ok,
  startRotationWorld,
  type RotationWorld,
  type WorldDevice,
} from '../helpers/rotation-world.js';

const run = promisify(execFile);
const ADDRESS = 'nina@example.org';
const NSS_DIR = '/usr/lib/thunderbird';
const SCRIPT = join(import.meta.dirname, '..', 'helpers', 'nss-cms-decrypt.py');

describe('a paired device reads through the proxy with openssl and with NSS', () => {
  let world: RotationWorld;
  let paired: WorldDevice;
  let other: WorldDevice;
  const dbOf = new Map<string, string>();

  /** An NSS database holding the device's .p12, as Thunderbird's would. */
  function nssDatabase(device: WorldDevice): string {
    const db = join(world.root, `nss-${device.name}`);
    mkdirSync(db);
    execFileSync('certutil', ['-N', '-d', `sql:${db}`, '--empty-password']);
    execFileSync('pk12util', ['-i', device.p12File, '-d', `sql:${db}`, '-W', device.p12Password]);
    return db;
  }

  async function nssDecrypt(device: WorldDevice, message: Buffer): Promise<string | null> {
    const file = join(world.root, `cms-${Date.now()}-${Math.random()}.der`);
    writeFileSync(file, message);
    const der = execFileSync('openssl', ['cms', '-cmsout', '-in', file, '-outform', 'DER']);
    const child = run('python3', [SCRIPT, dbOf.get(device.name)!], {
      env: { ...process.env, LD_LIBRARY_PATH: NSS_DIR, NSS_LIB_DIR: NSS_DIR },
      encoding: 'buffer',
    });
    child.child.stdin!.end(der);
    try {
      return (await child).stdout.toString('utf8');
    } catch {
      return null;
    }
  }

  /** `device invite` → `device join` in the device's own directory → `device approve`. */
  async function pairDevice(name: string): Promise<WorldDevice> {
    const invitation = /^(rdi1\.\S+)$/m.exec(ok(await world.owner(['device', 'invite'])))![1]!;
    const deviceDir = join(world.root, `device-${name}`);
    mkdirSync(deviceDir);
    const joining = runCli(['device', 'join', invitation, '--name', name, '--wait', '5'], {
      cwd: deviceDir,
      timeoutMs: 300_000,
    });
    let code = '';
    await waitFor(
      'the pairing request',
      async () => {
        const listed = ok(await world.owner(['device', 'list', '--pending']));
        code = new RegExp(`^([A-Z2-7]{4}-[A-Z2-7]{4})\\t${name}\\t`, 'm').exec(listed)?.[1] ?? '';
        return code !== '';
      },
      120_000,
    );
    ok(await world.owner(['device', 'approve', code]));
    const joined = parseDeviceAdd(ok(await joining), deviceDir);
    const pem = join(deviceDir, `${name}.pem`);
    execFileSync('openssl', [
      'pkcs12',
      '-in',
      joined.p12File,
      '-passin',
      `pass:${joined.p12Password}`,
      '-nodes',
      '-out',
      pem,
    ]);
    return {
      name,
      id: joined.id,
      devicePassword: joined.devicePassword,
      p12File: joined.p12File,
      p12Password: joined.p12Password,
      pem,
    };
  }

  beforeAll(async () => {
    for (const name of ['openssl', 'python3', 'certutil', 'pk12util']) requireBinary(name);
    expect(existsSync(join(NSS_DIR, 'libsmime3.so')), "Thunderbird's bundled NSS").toBe(true);
    // ECDH KeyAgreeRecipientInfo needs NSS 3.100 or later (docs/design.md §3).
    const version = execFileSync('python3', [SCRIPT, '--version'], {
      env: { ...process.env, LD_LIBRARY_PATH: NSS_DIR, NSS_LIB_DIR: NSS_DIR },
      encoding: 'utf8',
    }).trim();
    const [major, minor] = version.split('.').map(Number);
    expect(major! * 1000 + minor!, `NSS ${version}`).toBeGreaterThanOrEqual(3100);
    world = await startRotationWorld(ADDRESS);
    // Independent of each other: the added device and the paired one at once.
    [other, paired] = await Promise.all([world.addDevice('desk'), pairDevice('phone')]);
    dbOf.set('phone', nssDatabase(paired));
    dbOf.set('desk', nssDatabase(other));
  }, 300_000);
  afterAll(async () => {
    await world?.close();
  });

  it('reads a message with openssl and with NSS; the other device reads it with neither', async () => {
    await world.send('paired', 'Read by NSS and by openssl.\r\n');
    const [message] = await world.fetchAll(paired);
    const read = await Promise.all([
      world.decrypt(paired, message!),
      nssDecrypt(paired, message!),
      world.decrypt(other, message!),
      nssDecrypt(other, message!),
    ]);
    expect(read[0]).toContain('Read by NSS and by openssl.');
    expect(read[1]).toContain('Read by NSS and by openssl.');
    expect(read[2]).toBeNull();
    expect(read[3]).toBeNull();
  }, 120_000);

  it('keeps reading old and new mail with NSS after a fast rotation', async () => {
    ok(await world.owner(['owner', 'rotate', '--fast']));
    await world.send('rotated', 'After the rotation, still NSS.\r\n');
    const [before, after] = await world.fetchAll(paired);
    const read = await Promise.all([
      nssDecrypt(paired, before!),
      nssDecrypt(paired, after!),
      world.decrypt(paired, after!),
    ]);
    expect(read[0]).toContain('Read by NSS and by openssl.');
    expect(read[1]).toContain('After the rotation, still NSS.');
    expect(read[2]).toContain('After the rotation, still NSS.');
  }, 120_000);

  it('a device paired after the rotation reads the mail from before it too', async () => {
    const tablet = await pairDevice('tablet');
    dbOf.set('tablet', nssDatabase(tablet));
    const [before, after] = await world.fetchAll(tablet);
    const read = await Promise.all([
      nssDecrypt(tablet, before!),
      world.decrypt(tablet, before!),
      nssDecrypt(tablet, after!),
    ]);
    expect(read[0]).toContain('Read by NSS and by openssl.');
    expect(read[1]).toContain('Read by NSS and by openssl.');
    expect(read[2]).toContain('After the rotation, still NSS.');
  }, 300_000);
});
