/**
 * Certificates by ACME (RFC 8555) for every TLS listener, in place of `tls` files: obtained
 * at the first start, kept in `<dataDir>/acme/`, checked at start and every
 * `acme.checkInterval`, renewed when they expire within `acme.renewBefore`, and handed to
 * the gateway to hot-reload as SIGHUP does (docs/deployment.md "ACME"). acme-client speaks
 * the protocol; this part owns the files, the challenge listeners and the schedule.
 */
import { rootCertificates } from 'node:tls';
import { Agent } from 'node:https';
import { readFileSync } from 'node:fs';
import acme from 'acme-client';
import type { Logger } from '../config/logger.js';
import type { GatewayConfig } from '../config/schema.js';
import type { TlsMaterial } from '../config/tls.js';
import { StartupError, causeChain } from '../gateway/startup-errors.js';
import {
  acmeFiles,
  readAccountKey,
  readStoredCertificate,
  writeAccountKey,
  writeCertificate,
  type StoredCertificate,
} from './files.js';
import {
  startHttp01Responder,
  startTlsAlpn01Responder,
  type ChallengeResponder,
} from './responders.js';

export type AcmeSettings = NonNullable<GatewayConfig['acme']>;

export interface AcmeCertificates {
  /** The certificate to serve now, re-read from `<dataDir>/acme/`. */
  material(): TlsMaterial;
  /** Renews now if due; resolves true when a new certificate was installed (and reloaded). */
  check(): Promise<boolean>;
  /**
   * Starts the renewal schedule (a check now, then every acme.checkInterval); `onRenewed`
   * reloads every listener. Returns the function that stops it.
   */
  schedule(onRenewed: (tls: TlsMaterial) => void | Promise<void>): () => Promise<void>;
}

/** setInterval takes at most a signed 32-bit number of milliseconds. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Reads the stored certificate, or obtains the first one (the gateway has nothing to serve
 * without it, so a failure here stops the start). The challenge listener is open only
 * while an order is in progress.
 */
export async function openAcmeCertificates(options: {
  settings: AcmeSettings;
  dataDir: string;
  logger: Logger;
}): Promise<AcmeCertificates> {
  const { settings, logger } = options;
  const files = acmeFiles(options.dataDir);
  const domains = settings.domains.map((d) => d.toLowerCase());
  if (settings.caFile !== undefined) {
    // The CA's API is HTTPS; a private or test CA's root is added to the public ones.
    acme.axios.defaults.httpsAgent = new Agent({
      ca: [...rootCertificates, readFileSync(settings.caFile, 'utf8')],
    });
  }

  const materialOf = (stored: StoredCertificate): TlsMaterial => ({
    key: stored.key,
    cert: stored.cert,
    keyFile: files.key,
    certFile: files.cert,
    generated: false,
  });
  const due = (stored: StoredCertificate | undefined): string | undefined => {
    if (stored === undefined) return 'no certificate yet';
    if (domains.some((d) => !stored.names.includes(d))) return 'acme.domains changed';
    if (stored.notAfter.getTime() - Date.now() <= settings.renewBefore)
      return `expires ${stored.notAfter.toISOString()}, within acme.renewBefore`;
    return undefined;
  };

  const obtain = async (reason: string): Promise<StoredCertificate> => {
    logger.info(
      { domains, challenge: settings.challenge, reason },
      'ACME: requesting a certificate',
    );
    let accountKey = readAccountKey(files);
    if (accountKey === undefined) {
      accountKey = (await acme.crypto.createPrivateEcdsaKey('P-256')).toString();
      writeAccountKey(files, accountKey);
    }
    const client = new acme.Client({ directoryUrl: settings.directoryUrl, accountKey });
    const [key, csr] = await acme.crypto.createCsr(
      { commonName: domains[0]!, altNames: domains },
      await acme.crypto.createPrivateEcdsaKey('P-256'),
    );
    const [option, port] =
      settings.challenge === 'http-01'
        ? ['acme.httpPort', settings.httpPort]
        : ['acme.tlsAlpnPort', settings.tlsAlpnPort];
    const responder: ChallengeResponder = await (
      settings.challenge === 'http-01'
        ? startHttp01Responder(settings.host, port, logger)
        : startTlsAlpn01Responder(settings.host, port, logger)
    ).catch((error: unknown) => {
      throw new Error(`${option} ${port}: ${(error as NodeJS.ErrnoException).code ?? error}`);
    });
    let cert: string;
    try {
      cert = await client.auto({
        csr,
        ...(settings.email !== undefined ? { email: settings.email } : {}),
        // Configuring acme is the operator's agreement to the CA's terms (docs/deployment.md).
        termsOfServiceAgreed: true,
        // acme-client's self-check fetches from the standard ports (80/443); the CA's own
        // validation is the one that counts.
        skipChallengeVerification: true,
        challengePriority: [settings.challenge],
        challengeCreateFn: async (authz, challenge, keyAuthorization) => {
          const name = authz.identifier.value;
          if (settings.challenge === 'tls-alpn-01') {
            const alpnKey = await acme.crypto.createPrivateEcdsaKey('P-256');
            const [, alpnCert] = await acme.crypto.createAlpnCertificate(
              authz,
              keyAuthorization,
              alpnKey,
            );
            responder.add({
              token: challenge.token,
              name,
              keyAuthorization,
              key: alpnKey.toString(),
              cert: alpnCert.toString(),
            });
          } else {
            responder.add({ token: challenge.token, name, keyAuthorization });
          }
        },
        challengeRemoveFn: async (authz, challenge) => {
          responder.remove({ token: challenge.token, name: authz.identifier.value });
        },
      });
    } finally {
      await responder.close();
    }
    writeCertificate(files, key.toString(), cert);
    const stored = readStoredCertificate(files);
    if (stored === undefined)
      throw new Error('ACME: the issued certificate does not match its key');
    logger.info(
      { domains, notAfter: stored.notAfter.toISOString(), certFile: files.cert },
      'ACME: certificate installed',
    );
    return stored;
  };

  let current = readStoredCertificate(files);
  const firstReason = due(current);
  // A stored certificate near expiry is still served while the schedule renews it.
  if (current === undefined || firstReason === 'acme.domains changed') {
    try {
      current = await obtain(firstReason!);
    } catch (error) {
      throw new StartupError(
        `acme: no certificate for ${domains.join(', ')} from ${settings.directoryUrl}: ${acmeReason(error)}`,
      );
    }
  }

  let onRenewed: (tls: TlsMaterial) => void | Promise<void> = () => undefined;
  let running: Promise<boolean> | undefined;
  const check = (): Promise<boolean> => {
    running ??= (async () => {
      const reason = due(current);
      if (reason === undefined) return false;
      current = await obtain(reason);
      await onRenewed(materialOf(current));
      return true;
    })().finally(() => (running = undefined));
    return running;
  };

  return {
    material: () => {
      // SIGHUP re-reads the files, as for `tls` (a restored backup is picked up).
      current = readStoredCertificate(files) ?? current;
      return materialOf(current!);
    },
    check,
    schedule(reload) {
      onRenewed = reload;
      const scheduled = () =>
        void check().catch((error: unknown) =>
          logger.error(
            { err: acmeReason(error), domains },
            'ACME: renewal failed; the current certificate stays, retried at the next check',
          ),
        );
      scheduled();
      const timer = setInterval(scheduled, Math.min(settings.checkInterval, MAX_TIMER_MS));
      return async () => {
        clearInterval(timer);
        onRenewed = () => undefined;
      };
    },
  };
}

/** The CA's own words when it gave any (an RFC 7807 problem document), else the error chain. */
function acmeReason(error: unknown): string {
  const problem = (error as { response?: { data?: { type?: unknown; detail?: unknown } } }).response
    ?.data;
  if (typeof problem?.detail === 'string')
    return `${problem.detail}${typeof problem.type === 'string' ? ` (${problem.type})` : ''}`;
  return causeChain(error);
}
