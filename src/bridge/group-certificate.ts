/**
 * The user's current group certificate, as the bridge encrypts APPENDs to it
 * (append-encrypt.ts): taken from the owner-signed public profile (docs/profile.md), never
 * from the gateway's word alone. The profile is verified as every sender verifies it
 * (signature, UDF of the signing key, address, the group certificate issued by that key)
 * and then bound to the device: the key that signed it must be the one that signed this
 * device's own certificate, i.e. the owner CA the device was enrolled under. A gateway
 * that served a certificate of its own would fail that check and gets nothing.
 *
 * Rotation (docs/design.md §6) replaces the published profile; a certificate older than
 * `maxAgeMs` is fetched again before the next APPEND, so the bridge follows within that
 * time. A profile issued before the one already known is refused (a replayed old profile
 * would keep the bridge on a former group). When a fetch fails the last verified
 * certificate is used: mail to a former group stays readable (§6), whereas falling back
 * to plaintext would let whoever blocks the fetch read the draft. The last verified
 * certificate and its profile's `issued` are kept sealed under the cache key
 * (`group.bin`, sealed-file.ts), so both hold across restarts.
 */
import { X509Certificate, createPublicKey } from 'node:crypto';
import { fetchProfile, type FetchedProfile } from '../profiles/index.js';
import { BridgeError } from './errors.js';
import { readSealed, writeSealed } from './sealed-file.js';

export interface GroupCertificateOptions {
  /** The mailbox address the profile is for. */
  address: string;
  /** DER of this device's certificate (from its .p12). */
  deviceCertificate: Uint8Array;
  /** Origin that publishes the profile; default `https://<domain of address>` (docs/profile.md §5). */
  baseUrl?: string;
  /** PEM to trust for that origin, when its certificate is self-signed. */
  ca?: string;
  /** A verified certificate is reused this long before the profile is fetched again. */
  maxAgeMs?: number;
  logger?: { warn(details: object, message: string): void };
  /** Where the last verified certificate is kept between starts (`sealedGroupStore`). */
  store?: GroupCertificateStore;
}

/** The last verified certificate and its profile's `issued` (ms since the epoch). */
export interface VerifiedGroup {
  certificate: Uint8Array;
  issued: number;
}

export interface GroupCertificateStore {
  load(): VerifiedGroup | null;
  save(group: VerifiedGroup): void;
}

const STORE_NAME = 'group-certificate';

/** `file` sealed under the cache key (its logical name as associated data). */
export function sealedGroupStore(file: string, key: Buffer): GroupCertificateStore {
  return {
    load() {
      const plain = readSealed(file, key, STORE_NAME);
      if (plain === null) return null;
      const parsed = JSON.parse(plain.toString('utf8')) as {
        certificate?: unknown;
        issued?: unknown;
      };
      if (typeof parsed.certificate !== 'string' || typeof parsed.issued !== 'number')
        throw new BridgeError('corrupt-cache', `${file} is not a bridge group certificate file`);
      return {
        certificate: new Uint8Array(Buffer.from(parsed.certificate, 'base64')),
        issued: parsed.issued,
      };
    },
    save(group) {
      const json = JSON.stringify({
        certificate: Buffer.from(group.certificate).toString('base64'),
        issued: group.issued,
      });
      writeSealed(file, key, STORE_NAME, Buffer.from(json, 'utf8'));
    },
  };
}

/** One minute: rotation reaches the bridge's next APPEND within it; bursts (MULTIAPPEND, mbsync) fetch once. */
export const DEFAULT_GROUP_CERTIFICATE_MAX_AGE_MS = 60_000;

interface Known {
  certificate: Uint8Array;
  /** The profile's `issued`, ms since the epoch. */
  issued: number;
  fetchedAt: number;
}

export class GroupCertificateSource {
  private known: Known | null = null;
  private refreshing: Promise<Uint8Array> | null = null;
  private readonly device: X509Certificate;

  constructor(private readonly options: GroupCertificateOptions) {
    this.device = new X509Certificate(Buffer.from(options.deviceCertificate));
    const saved = options.store?.load() ?? null;
    // Stale at once: the profile is fetched at the first APPEND, the saved one is the fallback.
    if (saved !== null) this.known = { ...saved, fetchedAt: 0 };
  }

  /** The certificate to encrypt to now; throws BridgeError when none was ever verified. */
  async current(): Promise<Uint8Array> {
    const maxAge = this.options.maxAgeMs ?? DEFAULT_GROUP_CERTIFICATE_MAX_AGE_MS;
    const known = this.known;
    if (known !== null && Date.now() - known.fetchedAt < maxAge) return known.certificate;
    this.refreshing ??= this.refresh().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  private async refresh(): Promise<Uint8Array> {
    let fetched: FetchedProfile;
    try {
      // HTTPS only, certificate verified, at most 64 KiB, 10 s (docs/profile.md §5).
      fetched = await fetchProfile(this.options.address, {
        ...(this.options.baseUrl !== undefined ? { baseUrl: this.options.baseUrl } : {}),
        ...(this.options.ca !== undefined ? { ca: this.options.ca } : {}),
      });
      this.checkOwner(fetched);
    } catch (error) {
      const reason = (error as Error).message;
      if (this.known === null) {
        // The client only hears NO: the reason is for the person reading the bridge's log.
        this.options.logger?.warn(
          { reason },
          'bridge: no verified group certificate; APPEND refused, nothing uploaded',
        );
        throw new BridgeError(
          'upstream',
          `no verified group certificate to encrypt to (the profile of ${this.options.address}: ${reason})`,
        );
      }
      this.options.logger?.warn(
        { reason },
        'bridge: the profile did not refresh; encrypting to the last verified group certificate',
      );
      return this.known.certificate;
    }
    const issued = Date.parse(fetched.profile.issued);
    if (this.known !== null && issued < this.known.issued) {
      this.options.logger?.warn(
        { issued: fetched.profile.issued },
        'bridge: the profile served is older than one already seen; keeping the newer group certificate',
      );
      return this.known.certificate;
    }
    const changed =
      this.known === null ||
      this.known.issued !== issued ||
      !Buffer.from(this.known.certificate).equals(Buffer.from(fetched.groupCertificate));
    this.known = { certificate: fetched.groupCertificate, issued, fetchedAt: Date.now() };
    if (changed) this.options.store?.save({ certificate: fetched.groupCertificate, issued });
    return fetched.groupCertificate;
  }

  /**
   * The profile's signer must be the owner CA that issued this device, and the group
   * certificate must name the address (as `device rekey` checks a new group, src/owner).
   */
  private checkOwner(fetched: FetchedProfile): void {
    const owner = createPublicKey({
      key: Buffer.from(fetched.ownerSpki),
      format: 'der',
      type: 'spki',
    });
    if (!this.device.verify(owner))
      throw new BridgeError(
        'upstream',
        "the profile is signed by a key that did not issue this device's certificate",
      );
    const group = new X509Certificate(Buffer.from(fetched.groupCertificate));
    const names = (group.subjectAltName ?? '').toLowerCase().split(/,\s*/);
    if (!names.includes(`email:${this.options.address.toLowerCase()}`))
      throw new BridgeError('upstream', 'the group certificate names another address');
  }
}
