import type { ProfileSource } from '../../src/profiles/index.js';

/**
 * A ProfileSource over plain maps, standing in for the key store (not this part's
 * concern). `failing` makes every lookup throw, as a key store that is down does.
 */
export class MapProfileSource implements ProfileSource {
  readonly profiles = new Map<string, string>();
  readonly certificates = new Map<string, Uint8Array>();
  readonly lookups: string[] = [];
  failing = false;

  async getSignedProfile(address: string): Promise<string | null> {
    this.lookups.push(address);
    if (this.failing) throw new Error('key store unavailable');
    return this.profiles.get(address) ?? null;
  }

  async getGroupCertificate(address: string): Promise<Uint8Array | null> {
    this.lookups.push(address);
    if (this.failing) throw new Error('key store unavailable');
    return this.certificates.get(address) ?? null;
  }
}
