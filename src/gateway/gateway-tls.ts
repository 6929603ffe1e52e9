/**
 * The TLS material of one gateway process (docs/configuration.md "tls" and "acme"): the
 * public listeners' certificate (configured files, ACME, or a generated self-signed one)
 * and the operator listener's, which is always the gateway's own self-signed certificate
 * in <dataDir>/tls. Both are re-read on reload (SIGHUP, a renewal); the own certificate is
 * re-issued for its key before it expires, also in a process that runs for years.
 */
import type { AcmeCertificates } from '../acme/index.js';
import type { Logger } from '../config/logger.js';
import type { GatewayConfig } from '../config/schema.js';
import { ensureTlsMaterial, type TlsMaterial } from '../config/tls.js';
import { causeChain } from './startup-errors.js';

/** How often the gateway's own certificate is checked for its expiry. */
const OWN_CERTIFICATE_CHECK_MS = 24 * 3600 * 1000;

export interface GatewayTls {
  /** The public listeners' material, as of the last reload. */
  readonly public: TlsMaterial;
  /** The operator listener's. */
  readonly operator: TlsMaterial;
  /** Re-reads both from their files (or ACME's current certificate). */
  reload(): Promise<void>;
  /** ACME's renewal schedule, calling `onRenewed` (none without acme); returns its stop. */
  scheduleAcme(onRenewed: () => Promise<void>): (() => Promise<void>) | undefined;
  /** Checks the own certificate daily, `onRenewed` once re-issued; returns the stop. */
  checkOwnCertificate(onRenewed: () => Promise<void>): () => Promise<void>;
}

export async function openGatewayTls(
  config: GatewayConfig,
  publicName: string,
  logger: Logger,
): Promise<GatewayTls> {
  const dataDir = config.dataDir;
  // With acme, the first certificate is obtained here, before any listener starts. The ACME
  // client (and its HTTP stack) is loaded only then: most gateways never use it.
  let acme: AcmeCertificates | undefined;
  if (config.acme !== undefined) {
    const { openAcmeCertificates } = await import('../acme/index.js');
    acme = await openAcmeCertificates({
      settings: config.acme,
      dataDir,
      logger: logger.child({ part: 'acme' }),
    });
  }
  const publicTls = async (): Promise<TlsMaterial> =>
    acme?.material() ?? (await ensureTlsMaterial(dataDir, config.tls, new Date(), publicName));
  // The operator listener is reached by address from this machine (the operator's
  // commands, health checks), not by a public name: it always serves the gateway's own
  // self-signed certificate in <dataDir>/tls, which those tools trust by its key, also
  // when the public listeners serve a CA-issued one (tls files, acme).
  const ownTls = (): Promise<TlsMaterial> =>
    ensureTlsMaterial(dataDir, undefined, new Date(), publicName);
  const operatorTls = async (current: TlsMaterial): Promise<TlsMaterial> =>
    config.tls === undefined && config.acme === undefined ? current : await ownTls();

  const first = await publicTls();
  if (first.generated)
    logger.info({ certFile: first.certFile }, 'generated a self-signed TLS certificate');
  if (first.renewed === true)
    logger.info(
      { certFile: first.certFile },
      're-issued the self-signed TLS certificate for its key',
    );
  const state = { public: first, operator: await operatorTls(first) };
  return {
    get public() {
      return state.public;
    },
    get operator() {
      return state.operator;
    },
    async reload() {
      state.public = await publicTls();
      state.operator = await operatorTls(state.public);
    },
    scheduleAcme: (onRenewed) => acme?.schedule(onRenewed),
    checkOwnCertificate(onRenewed) {
      const timer = setInterval(() => {
        ownTls()
          .then((own) => (own.renewed === true ? onRenewed() : undefined))
          .catch((error: unknown) =>
            logger.warn({ err: causeChain(error) }, 'TLS: the own certificate check failed'),
          );
      }, OWN_CERTIFICATE_CHECK_MS);
      timer.unref();
      return async () => clearInterval(timer);
    },
  };
}
