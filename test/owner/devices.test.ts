/**
 * The owner library's device functions against the real admin API (in-process, TLS,
 * SQLite): the .p12 lands only after the gateway accepted the device; a refused upload
 * leaves no file; and when the upload succeeded but the .p12 cannot take its name, the key
 * is kept (not lost) and the caller is told where.
 */
import { readFileSync, readdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  OwnerError,
  addDevice,
  listDevices,
  revokeDevice,
  type OwnerKey,
} from '../../src/owner/index.js';
import { readPkcs12, recipientIdOf } from '../../src/recrypt/index.js';
import { startApiGateway, type ApiGateway } from '../helpers/cli-api.js';
import { enrolOwner } from '../helpers/owner-enrolment.js';
import { expectWithinImporterLimits } from '../helpers/pkcs12-limits.js';
import { tempDir } from '../helpers/tmp.js';

const ADDRESS = 'olga@example.org';

describe('owner device functions', () => {
  let gw: ApiGateway;
  let key: OwnerKey;
  const out = tempDir('recrypt-devices-');

  beforeAll(async () => {
    gw = await startApiGateway();
    ({ key } = await enrolOwner(gw, ADDRESS));
  });
  afterAll(async () => {
    await gw?.close();
    out.remove();
  });

  it('adds, lists and revokes a device; the .p12 holds the certificate the gateway stored', async () => {
    const added = await addDevice(key, { name: 'desk', outDir: out.path });
    expect(added.warning).toBeNull();
    expect(added.p12File).toBe(join(out.path, 'desk.p12'));
    const written = new Uint8Array(readFileSync(added.p12File));
    expectWithinImporterLimits(written, 'device add .p12');
    const p12 = await readPkcs12(written, added.p12Password);
    const stored = (await gw.keyStore.getDevice(ADDRESS, added.device.id))!;
    expect(stored.deviceId).toBe(Buffer.from(recipientIdOf(p12.certificate)).toString('hex'));
    expect((await listDevices(key)).map((d) => d.name)).toEqual(['desk']);
    expect((await revokeDevice(key, 'desk')).revoked).not.toBeNull();
    expect((await gw.keyStore.keysForDevice(ADDRESS, added.device.id)).size).toBe(0);
  });

  it('leaves no file when the gateway refuses the device', async () => {
    await addDevice(key, { name: 'phone', outDir: out.path });
    const before = readdirSync(out.path).sort();
    const other = tempDir('recrypt-devices-other-');
    try {
      await expect(addDevice(key, { name: 'phone', outDir: other.path })).rejects.toThrow(
        OwnerError,
      );
      expect(readdirSync(other.path)).toEqual([]);
    } finally {
      other.remove();
    }
    expect(readdirSync(out.path).sort()).toEqual(before);
  });

  it('keeps the key of an accepted device whose .p12 name is taken, and says where it is', async () => {
    // A dangling symlink: absent to the pre-check, present to link(2).
    symlinkSync(join(out.path, 'nowhere'), join(out.path, 'tablet.p12'));
    const added = await addDevice(key, { name: 'tablet', outDir: out.path });
    expect(added.warning).toMatch(
      /the device was added, but .*tablet\.p12 already exists.*left at .*\.tablet\.p12\.tmp-/,
    );
    expect(added.p12File).toMatch(/\.tablet\.p12\.tmp-/);
    const p12 = await readPkcs12(new Uint8Array(readFileSync(added.p12File)), added.p12Password);
    expect((await gw.keyStore.getDevice(ADDRESS, added.device.id))?.deviceId).toBe(
      Buffer.from(recipientIdOf(p12.certificate)).toString('hex'),
    );
  });
});
