/**
 * The owner's devices. `addDevice` makes the device key d and its certificate here,
 * computes rk = g·d⁻¹, and uploads only certificate, rk and the hash of a generated
 * device password: d and g never leave this machine. The .p12 is written in full to a
 * temp name before the upload and moved into place only after the gateway accepted the
 * device, so a refused upload leaves no file and an accepted one never lacks its file.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { hashDeviceCredential } from '../keystore/index.js';
import {
  buildDevicePkcs12,
  issueDeviceCertificate,
  publicPoint,
  randomScalar,
  recipientIdOf,
  recryptionKey,
  scalarToBytes,
  type ClientKind,
} from '../recrypt/index.js';
import { generatePassword, ownerClient, type ImapSettings } from './common.js';
import { OwnerError } from './errors.js';
import { commitTemp, discardTemp, writeTemp } from './files.js';
import { callGateway } from './gateway-client.js';
import type { OwnerKey } from './key-file.js';

export interface DeviceView {
  /** Record id (16 hex digits): what `device revoke` accepts besides the name. */
  id: string;
  name: string;
  client: ClientKind;
  created: string;
  lastSeen: string | null;
  revoked: string | null;
}

export interface AddDeviceOptions {
  name: string;
  client?: ClientKind;
  /** Directory for `<name>.p12` (default the current one). */
  outDir?: string;
  now?: Date;
}

export interface AddedDevice {
  device: DeviceView;
  p12File: string;
  /** Shown once; the .p12 is encrypted with it. */
  p12Password: string;
  /** Shown once; the IMAP password of this device (the gateway keeps only its hash). */
  devicePassword: string;
  username: string;
  imap: ImapSettings;
  /** Set when the device was added but its .p12 could not be moved to its name. */
  warning: string | null;
}

// Same rule as the key store's, checked here first so that no key is made for a name the gateway refuses.
const DEVICE_NAME = /^[\p{L}\p{N}._ -]{1,64}$/u;

export function checkDeviceName(name: string): string {
  if (!DEVICE_NAME.test(name) || name.trim() !== name || name === '.' || name === '..') {
    throw new OwnerError(
      'invalid-argument',
      `device name ${JSON.stringify(name)}: use 1-64 letters, digits, space, dot, dash or underscore`,
    );
  }
  return name;
}

export async function addDevice(key: OwnerKey, options: AddDeviceOptions): Promise<AddedDevice> {
  const name = checkDeviceName(options.name);
  const client = options.client ?? 'standard';
  if (client !== 'standard' && client !== 'outlook') {
    throw new OwnerError(
      'invalid-argument',
      `client ${JSON.stringify(client)}: expected standard or outlook`,
    );
  }
  const p12File = join(options.outDir ?? '.', `${name}.p12`);
  if (existsSync(p12File))
    throw new OwnerError('exists', `${p12File} already exists; not overwriting it (use --out)`);
  const now = options.now ?? new Date();
  const deviceSecret = randomScalar();
  const certificate = await issueDeviceCertificate({
    ca: key.ownerCaCertificate,
    caSecret: key.ownerCaSecret,
    publicKey: publicPoint(deviceSecret),
    address: key.address,
    name,
    now,
  });
  const p12Password = generatePassword();
  const devicePassword = generatePassword();
  const p12 = await buildDevicePkcs12({
    deviceSecret,
    certificate,
    caCertificates: [key.ownerCaCertificate],
    password: p12Password,
    friendlyName: `${key.address} (${name})`,
  });
  const rk = recryptionKey(key.groupSecret, deviceSecret);
  const credentialHash = await hashDeviceCredential(devicePassword, key.address);
  const temp = writeTemp(p12File, p12);
  let reply: { device: DeviceView; imap: ImapSettings };
  try {
    reply = await callGateway(ownerClient(key), 'POST', '/v1/owner/devices', {
      name,
      client,
      certificate: Buffer.from(certificate).toString('base64'),
      rk: Buffer.from(scalarToBytes(rk)).toString('base64'),
      // Keys for the groups the mailbox had before a rotation: old mail reads too.
      ...((key.formerGroups ?? []).length > 0
        ? {
            formerKeys: key.formerGroups!.map((group) => ({
              groupId: Buffer.from(recipientIdOf(group.groupCertificate)).toString('hex'),
              rk: Buffer.from(
                scalarToBytes(recryptionKey(group.groupSecret, deviceSecret)),
              ).toString('base64'),
            })),
          }
        : {}),
      credentialHash,
    });
  } catch (error) {
    discardTemp(temp);
    if (error instanceof OwnerError && error.status === 409) {
      throw new OwnerError(
        'gateway-refused',
        `a device named ${JSON.stringify(name)} already exists for ${key.address}`,
        409,
      );
    }
    throw error;
  }
  let file = p12File;
  let warning: string | null = null;
  try {
    commitTemp(temp, p12File);
  } catch (error) {
    // The gateway has the device now: keep its key where it is and say so, rather than lose it.
    file = temp;
    warning = `the device was added, but ${(error as Error).message}; its .p12 was left at ${temp}`;
  }
  return {
    device: reply.device,
    p12File: file,
    p12Password,
    devicePassword,
    username: key.address,
    imap: reply.imap,
    warning,
  };
}

export async function listDevices(key: OwnerKey): Promise<DeviceView[]> {
  const reply = await callGateway<{ devices: DeviceView[] }>(
    ownerClient(key),
    'GET',
    '/v1/owner/devices',
  );
  return reply.devices;
}

/** Revokes the active device with this name, or the device with this record id. */
export async function revokeDevice(key: OwnerKey, nameOrId: string): Promise<DeviceView> {
  const devices = await listDevices(key);
  const target =
    devices.find((d) => d.revoked === null && d.name === nameOrId) ??
    devices.find((d) => d.id === nameOrId);
  if (target === undefined) {
    throw new OwnerError(
      'invalid-argument',
      `no device named or with id ${JSON.stringify(nameOrId)} for ${key.address}`,
    );
  }
  const reply = await callGateway<{ device: DeviceView }>(
    ownerClient(key),
    'POST',
    `/v1/owner/devices/${encodeURIComponent(target.id)}/revoke`,
  );
  return reply.device;
}
