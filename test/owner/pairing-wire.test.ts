/**
 * The pieces both ends of a device pairing share: the device's certificate request
 * (OpenSSL's `req -verify` accepts it and reads the same key; a changed byte, another
 * key or a non-P-256 request is refused), the short code (stable, and different when any
 * bound field changes), the invitation's parsing, and `recrypt device join` on bad input
 * (one line on stderr, a non-zero exit, nothing written).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildDeviceRequest, readDeviceRequest } from '../../src/recrypt/device-request.js';
import { publicPoint, randomScalar } from '../../src/recrypt/index.js';
import {
  decodePairingInvitation,
  encodePairingInvitation,
  pairingShortCode,
  sameShortCode,
} from '../../src/owner/pairing-wire.js';
import { requireBinary } from '../helpers/binaries.js';
import { runCli } from '../helpers/cli-run.js';
import { tempDir } from '../helpers/tmp.js';

const dir = tempDir('recrypt-pairing-wire-');
afterAll(() => dir.remove());

describe('the device certificate request', () => {
  const openssl = requireBinary('openssl');

  it('is a PKCS#10 request openssl verifies, for D and the device name', async () => {
    const d = randomScalar();
    const der = await buildDeviceRequest(d, 'work laptop');
    const file = join(dir.path, 'request.der');
    writeFileSync(file, der);
    const text = execFileSync(
      openssl,
      ['req', '-in', file, '-inform', 'DER', '-verify', '-noout', '-subject'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    ).toString();
    expect(text).toMatch(/CN\s*=\s*work laptop/);
    const read = await readDeviceRequest(der);
    expect(read.name).toBe('work laptop');
    expect(Buffer.from(read.point).equals(Buffer.from(publicPoint(d)))).toBe(true);
  });

  it('refuses a changed byte, a request openssl made with a P-384 key, and garbage', async () => {
    const der = await buildDeviceRequest(randomScalar(), 'phone');
    for (const at of [der.length - 3, der.length - 40]) {
      const bad = Uint8Array.from(der);
      bad[at]! ^= 0x01;
      await expect(readDeviceRequest(bad)).rejects.toThrow(/certificate request: /);
    }
    const key = join(dir.path, 'p384.pem');
    const out = join(dir.path, 'p384.der');
    execFileSync(openssl, ['ecparam', '-name', 'secp384r1', '-genkey', '-noout', '-out', key]);
    execFileSync(openssl, [
      'req',
      '-new',
      '-key',
      key,
      '-subj',
      '/CN=phone',
      '-outform',
      'DER',
      '-out',
      out,
    ]);
    const p384 = new Uint8Array(readFileSync(out));
    await expect(readDeviceRequest(p384)).rejects.toThrow(/not a P-256 point/);
    await expect(readDeviceRequest(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x00]))).rejects.toThrow(
      /not a DER PKCS#10 request/,
    );
  });
});

describe('the short code', () => {
  it('is 8 base32 characters, stable, and changes with every bound field', async () => {
    const request = await buildDeviceRequest(randomScalar(), 'phone');
    const code = pairingShortCode('UDF-A', request, 'alpha', 'standard');
    expect(code).toMatch(/^[A-Z2-7]{4}-[A-Z2-7]{4}$/);
    expect(pairingShortCode('UDF-A', request, 'alpha', 'standard')).toBe(code);
    const other = await buildDeviceRequest(randomScalar(), 'phone');
    for (const changed of [
      pairingShortCode('UDF-B', request, 'alpha', 'standard'),
      pairingShortCode('UDF-A', other, 'alpha', 'standard'),
      pairingShortCode('UDF-A', request, 'alphb', 'standard'),
      pairingShortCode('UDF-A', request, 'alpha', 'outlook'),
    ])
      expect(changed).not.toBe(code);
    expect(sameShortCode(code.toLowerCase().replace('-', ' '), code)).toBe(true);
    expect(sameShortCode('AAAA-AAAA', code === 'AAAA-AAAA' ? 'BBBB-BBBB' : code)).toBe(false);
  });
});

describe('the invitation', () => {
  const valid = {
    gateway: 'https://gw.example.org:8443',
    address: 'a@example.org',
    udf: 'MABC-DEFG',
    invite: 'sealed',
    key: 'a2V5',
  };

  it('round-trips, and refuses what is not one', () => {
    expect(decodePairingInvitation(encodePairingInvitation(valid))).toEqual(valid);
    for (const text of [
      'rli1.e30',
      'rdi1.not-json',
      encodePairingInvitation({ ...valid, udf: 7 as unknown as string }),
      'rdi1.' + 'A'.repeat(20_000),
    ])
      expect(() => decodePairingInvitation(text)).toThrow(/pairing invitation: malformed/);
    expect(() =>
      decodePairingInvitation(encodePairingInvitation({ ...valid, gateway: 'http://x' })),
    ).toThrow(/gateway: expected https/);
  });

  it('`recrypt device join` with a malformed invitation: one line, exit non-zero, nothing written', async () => {
    const cwd = join(dir.path, 'device');
    mkdirSync(cwd);
    const result = await runCli(['device', 'join', 'rdi1.garbage', '--name', 'phone'], { cwd });
    expect(result.code).not.toBe(0);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/pairing invitation: malformed/);
    expect(readdirSync(cwd)).toEqual([]);
    const badName = await runCli(
      ['device', 'join', encodePairingInvitation(valid), '--name', '../x'],
      { cwd },
    );
    expect(badName.code).not.toBe(0);
    expect(badName.stderr).toMatch(/device name/);
  });
});
