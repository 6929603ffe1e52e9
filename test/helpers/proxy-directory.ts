/**
 * An in-memory DeviceDirectory for the proxy's tests until the key-store adapter is
 * wired: the port's data (users, device passwords, recryption keys), not a mocked server.
 * Passwords are compared as SHA-256 digests with timingSafeEqual, like the real one.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type {
  AuthenticatedDevice,
  DeviceDirectory,
  DeviceRevokedEvent,
} from '../../src/imap/ports.js';
import { UnavailableError } from '../../src/imap/errors.js';
import type { TestUser } from './proxy-pki.js';

const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

export class MemoryDirectory implements DeviceDirectory {
  private readonly devices = new Map<string, { hash: Buffer; device: AuthenticatedDevice }[]>();
  private readonly events = new EventEmitter();
  /** Simulates a key store that cannot be reached. */
  down = false;

  addUser(user: TestUser): void {
    this.devices.set(
      user.address.toLowerCase(),
      user.devices.map((d) => ({
        hash: digest(d.password),
        device: {
          address: user.address,
          deviceId: d.deviceId,
          keys: d.keys,
          groupCertificate: user.group.certDer,
        },
      })),
    );
  }

  async authenticate(address: string, password: string): Promise<AuthenticatedDevice | null> {
    if (this.down) throw new UnavailableError('test directory is down');
    const candidate = digest(password);
    let found: AuthenticatedDevice | null = null;
    for (const entry of this.devices.get(address.toLowerCase()) ?? []) {
      if (timingSafeEqual(entry.hash, candidate)) found = entry.device;
    }
    return found;
  }

  revoke(address: string, deviceId: string): void {
    const list = this.devices.get(address.toLowerCase()) ?? [];
    this.devices.set(
      address.toLowerCase(),
      list.filter((e) => e.device.deviceId !== deviceId),
    );
    this.events.emit('revoked', { address, deviceId } satisfies DeviceRevokedEvent);
  }

  onDeviceRevoked(listener: (event: DeviceRevokedEvent) => void): () => void {
    this.events.on('revoked', listener);
    return () => this.events.off('revoked', listener);
  }
}
