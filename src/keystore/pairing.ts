/**
 * Pending device pairings (docs/cli.md "Pairing a device"): what a new device left with
 * the gateway for its owner to approve. The record is the same for both adapters: they
 * keep it as one JSON text per (owner, id) with its expiry beside it, and this file
 * makes, checks and reads that text. τ = t⁻¹, the device's blinding share, is the one
 * sensitive field: it is wrapped under the gateway key like a recryption key, and it is
 * dropped when the owner approves (the approved record keeps only the certificate until
 * the device picks it up).
 */
import type { ClientKind, Scalar } from '../recrypt/types.js';
import { KeyStoreArgumentError, KeyStoreError } from './errors.js';
import { type GatewayKey, unwrapRecryptionKey, wrapRecryptionKey } from './key-wrapping.js';
import { newRecordId } from './tokens.js';
import {
  checkClient,
  checkDer,
  checkDeviceName,
  checkOpaque,
  checkRecipientIdHex,
  checkScalar,
  normaliseAddress,
} from './validate.js';

export interface NewPairingRequest {
  ownerAddress: string;
  name: string;
  client: ClientKind;
  /** The device's PKCS#10 certificate request (DER): D and the device's name, signed by d. */
  certificateRequest: Uint8Array;
  /** α = t·d⁻¹ sealed to the owner's group key; opaque here. */
  sealedAlpha: string;
  /** The owner group (RecipientId hex) α was sealed to: a re-enrolled owner cannot open it. */
  groupId: string;
  /** τ = t⁻¹; stored wrapped. */
  tau: Scalar;
  /** The device's own IMAP credential hash (the device chose the password). */
  credentialHash: string;
  /** SHA-256 (hex) of the secret the device fetches its certificate with. */
  pickupHash: string;
  /** The sealed invite the device used, and its MAC over the request with the invitation's key. */
  invite: string;
  tag: string;
  expires: number;
}

export interface PairingRequest extends Omit<NewPairingRequest, 'tau'> {
  /** 16 hex digits, chosen by the store. */
  id: string;
  created: number;
  /** null once approved (the gateway forgets τ as soon as it computed rk). */
  tau: Scalar | null;
  /** The device certificate the owner issued; null while pending. */
  approvedCertificate: Uint8Array | null;
}

/** A user with this many unexpired pairing requests gets `LimitError` for the next. */
export class LimitError extends KeyStoreError {
  override readonly name = 'LimitError';
  constructor(message: string) {
    super('invalid-argument', message);
  }
}

interface StoredPairing {
  v: 1;
  id: string;
  ownerAddress: string;
  name: string;
  client: ClientKind;
  certificateRequest: string;
  sealedAlpha: string;
  groupId: string;
  tau: string | null;
  credentialHash: string;
  pickupHash: string;
  invite: string;
  tag: string;
  created: number;
  expires: number;
  approvedCertificate: string | null;
}

const TAU_GROUP = 'pairing-tau';
const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
const unb64 = (text: string) => new Uint8Array(Buffer.from(text, 'base64'));

/** Checks the input and makes the record with its id; the text both adapters store. */
export function preparePairing(
  input: NewPairingRequest,
  key: GatewayKey,
  now: number,
): { request: PairingRequest; stored: string } {
  const ownerAddress = normaliseAddress(input.ownerAddress);
  checkDeviceName(input.name);
  checkClient(input.client);
  checkDer(input.certificateRequest, 'certificateRequest');
  checkOpaque(input.sealedAlpha, 'sealedAlpha', 1024);
  checkRecipientIdHex(input.groupId, 'groupId');
  checkScalar(input.tau, 'tau');
  checkOpaque(input.credentialHash, 'credentialHash', 512);
  checkOpaque(input.invite, 'invite', 1024);
  checkOpaque(input.tag, 'tag', 128);
  if (!/^[0-9a-f]{64}$/.test(input.pickupHash))
    throw new KeyStoreArgumentError('pickupHash must be 64 hex digits');
  if (!Number.isSafeInteger(input.expires) || input.expires <= now)
    throw new KeyStoreArgumentError('expires must be a time in the future');
  const request: PairingRequest = {
    ...input,
    ownerAddress,
    id: newRecordId(),
    created: now,
    approvedCertificate: null,
  };
  return { request, stored: encodePairing(request, key) };
}

export function encodePairing(request: PairingRequest, key: GatewayKey): string {
  const stored: StoredPairing = {
    v: 1,
    id: request.id,
    ownerAddress: request.ownerAddress,
    name: request.name,
    client: request.client,
    certificateRequest: b64(request.certificateRequest),
    sealedAlpha: request.sealedAlpha,
    groupId: request.groupId,
    tau:
      request.tau === null
        ? null
        : wrapRecryptionKey(key, request.tau, {
            groupId: TAU_GROUP,
            targetId: request.id,
          }).toString('base64'),
    credentialHash: request.credentialHash,
    pickupHash: request.pickupHash,
    invite: request.invite,
    tag: request.tag,
    created: request.created,
    expires: request.expires,
    approvedCertificate:
      request.approvedCertificate === null ? null : b64(request.approvedCertificate),
  };
  return JSON.stringify(stored);
}

export function decodePairing(text: string, key: GatewayKey): PairingRequest {
  let s: StoredPairing;
  try {
    s = JSON.parse(text) as StoredPairing;
  } catch {
    throw new KeyStoreError('corrupt', 'pairing request record is not JSON');
  }
  if (s?.v !== 1) throw new KeyStoreError('corrupt', 'pairing request record has the wrong form');
  return {
    id: s.id,
    ownerAddress: s.ownerAddress,
    name: s.name,
    client: s.client,
    certificateRequest: unb64(s.certificateRequest),
    sealedAlpha: s.sealedAlpha,
    groupId: s.groupId,
    tau:
      s.tau === null
        ? null
        : unwrapRecryptionKey(key, unb64(s.tau), { groupId: TAU_GROUP, targetId: s.id }),
    credentialHash: s.credentialHash,
    pickupHash: s.pickupHash,
    invite: s.invite,
    tag: s.tag,
    created: s.created,
    expires: s.expires,
    approvedCertificate: s.approvedCertificate === null ? null : unb64(s.approvedCertificate),
  };
}

/** The approved form of a pending record: τ gone, the certificate kept for the pickup. */
export function approvedPairing(request: PairingRequest, certificate: Uint8Array): PairingRequest {
  return { ...request, tau: null, approvedCertificate: checkDer(certificate, 'certificate') };
}

/**
 * The pairing part of KeyStore. Lookups skip expired records; a record outlives its
 * owner only until it expires and is never returned for a user created after it.
 */
export interface PairingStore {
  /**
   * Stores a pending request. `LimitError` when the owner already has `maxPending`
   * unexpired requests; `NotFoundError('user')` for no such user.
   */
  addPairingRequest(request: NewPairingRequest, maxPending: number): Promise<PairingRequest>;
  /** The owner's unexpired requests, pending and approved, oldest first. */
  listPairingRequests(address: string): Promise<PairingRequest[]>;
  getPairingRequest(address: string, id: string): Promise<PairingRequest | null>;
  /**
   * Pending → approved, once: of concurrent calls exactly one wins. `NotFoundError`
   * ('pairing-request') if the request is gone, expired or already approved.
   */
  approvePairingRequest(
    address: string,
    id: string,
    certificate: Uint8Array,
  ): Promise<PairingRequest>;
  /** Deletes the request; false if there was none. */
  removePairingRequest(address: string, id: string): Promise<boolean>;
}
