/**
 * The records the key store keeps. Binary values (certificates, keys) are `Uint8Array`
 * DER; recipient identifiers are lowercase hex of the DER IssuerAndSerialNumber (the
 * same form `DeviceRecryptKeys.keys` uses); times are milliseconds since the epoch.
 */
import type { ClientKind, Scalar } from '../recrypt/types.js';

export type EnrolmentState = 'pending' | 'enrolled';

export interface User {
  /** Normalised: trimmed, domain lowercased, local part kept as given. */
  address: string;
  displayName: string;
  enrolment: EnrolmentState;
  /** Set by enrolment; null while pending. */
  owner: OwnerCertificates | null;
  created: number;
}

/** What the owner's CLI uploads at enrolment (and again if it re-keys). */
export interface OwnerCertificates {
  /** The owner CA certificate (DER); issues the group and device certificates. */
  ownerCaCertificate: Uint8Array;
  /** The group certificate (DER): senders encrypt to it, the MX encrypts on arrival to it. */
  groupCertificate: Uint8Array;
  /** The group certificate's RecipientId, lowercase hex. */
  groupId: string;
  /** The owner's request-signing public key, SubjectPublicKeyInfo DER (admin API). */
  ownerKeySpki: Uint8Array;
}

export interface NewUser {
  address: string;
  displayName?: string;
}

export interface Device {
  /** Short record id (16 hex digits), chosen by the store; what `device revoke <id>` names. */
  id: string;
  ownerAddress: string;
  /** Unique among the owner's active (non-revoked) devices. */
  name: string;
  /** The device certificate (DER). */
  certificate: Uint8Array;
  /** The device certificate's RecipientId, lowercase hex; unique per owner. */
  deviceId: string;
  client: ClientKind;
  /** From `hashDeviceCredential`; never the password. */
  credentialHash: string;
  created: number;
  lastSeen: number | null;
  /** When it was revoked; null while active. A revoked device has no recryption keys. */
  revoked: number | null;
}

export interface NewDevice {
  ownerAddress: string;
  name: string;
  certificate: Uint8Array;
  deviceId: string;
  client: ClientKind;
  credentialHash: string;
  /**
   * The device's recryption keys, group RecipientId hex → rk. Usually one entry (the
   * owner's group); stored in the same atomic change as the device.
   */
  keys: ReadonlyMap<string, Scalar>;
}

/** Change notifications; they reach every gateway process sharing the store. */
export type KeyStoreEvent =
  | { type: 'device-revoked'; address: string; id: string; deviceId: string }
  | { type: 'key-added'; address: string; id: string; deviceId: string; groupId: string }
  | { type: 'user-removed'; address: string }
  /**
   * A list's membership or keys changed (join, removal, rotation, list removed): holders
   * of composed list keys (the proxy) re-read the members' keys.
   */
  | { type: 'list-changed'; list: string; members: string[] }
  /**
   * Local only: the notification channel was interrupted and is back, so events may
   * have been missed. Holders of cached state (open IMAP sessions) re-check it.
   */
  | { type: 'resync' };

export type KeyStoreListener = (event: KeyStoreEvent) => void;

/** How to reach the key store; the same shape as `keyStore` in the gateway config. */
export type KeyStoreConfig =
  | { kind: 'sqlite'; path: string }
  | { kind: 'redis'; url: string }
  | { kind: 'redis-cluster'; nodes: ReadonlyArray<{ host: string; port: number }> }
  | {
      kind: 'redis-sentinel';
      sentinels: ReadonlyArray<{ host: string; port: number }>;
      name: string;
    };
