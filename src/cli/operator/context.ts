/**
 * The operator's commands run on the gateway machine and find everything through the
 * gateway's config: `--config FILE`, else ./recrypt.yaml when present, else the defaults.
 * From it: the operator listener's address (docs/admin-api.md), the admin token file,
 * and the TLS certificate to trust (the operator listener always serves the gateway's own,
 * self-signed, in <dataDir>/tls).
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { loadConfig } from '../../config/load.js';
import type { GatewayConfig } from '../../config/schema.js';
import type { GatewayClientOptions } from '../../owner/index.js';
import { CliError } from '../errors.js';

export const DEFAULT_CONFIG_FILE = 'recrypt.yaml';

export interface OperatorContext {
  config: GatewayConfig;
  configFile: string | undefined;
  dataDir: string;
  tokenFile: string;
  /**
   * The operator listener's certificate: always the gateway's own self-signed one in
   * <dataDir>/tls, whatever certificate the public listeners serve (src/gateway/start.ts).
   */
  operatorCertFile: string;
  /**
   * The certificate owners pass to `owner init --ca` when the public listeners serve a
   * self-signed one (the generated one, or a configured self-signed file); null for a
   * CA-issued certificate (configured files, acme), which owners verify by host name.
   */
  ownerCaFile: string | null;
  /** Where the operator reaches the operator listener from this machine. */
  adminUrl: string;
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '[::]';
}

function origin(host: string, port: number): string {
  return `https://${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${port}`;
}

/** `--config FILE`, else ./recrypt.yaml when present, else none (the defaults). */
export function findConfigFile(configOption: string | undefined): string | undefined {
  return configOption ?? (existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : undefined);
}

export function resolveOperatorContext(configOption: string | undefined): OperatorContext {
  const file = findConfigFile(configOption);
  const { config } = loadConfig(file);
  const dataDir = config.dataDir;
  const inData = (path: string) => (isAbsolute(path) ? path : resolve(dataDir, path));
  const host = isWildcard(config.operator.host) ? '127.0.0.1' : config.operator.host;
  return {
    config,
    configFile: file,
    dataDir,
    tokenFile: inData(config.admin.tokenFile),
    operatorCertFile: join(dataDir, 'tls', 'cert.pem'),
    ownerCaFile: ownerCaFile(config, dataDir),
    adminUrl: origin(host, config.operator.port),
  };
}

function ownerCaFile(config: GatewayConfig, dataDir: string): string | null {
  if (config.acme !== undefined) return null;
  if (config.tls === undefined) return join(dataDir, 'tls', 'cert.pem');
  const file = resolve(config.tls.cert);
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch {
    return null; // named by `recrypt start` and `config check`; a CA-issued file is the usual case
  }
  try {
    const first = new X509Certificate(pem);
    return first.subject === first.issuer && first.verify(first.publicKey) ? file : null;
  } catch {
    return null;
  }
}

/**
 * The URL owners use: the configured public `hostname`, else the listener's address, or
 * this machine's name when bound to every address.
 */
export function publicAdminUrl(context: OperatorContext): string {
  const host =
    context.config.hostname ??
    (isWildcard(context.config.admin.host) ? hostname() : context.config.admin.host);
  return origin(host, context.config.admin.port);
}

function readRequired(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CliError(
      code === 'ENOENT'
        ? `no ${what} at ${path} (run \`recrypt init\` first, or pass --config)`
        : `cannot read the ${what} ${path}: ${code ?? String(error)}`,
    );
  }
}

/** Admin-token authenticated client options for this gateway. */
export function adminClient(context: OperatorContext): GatewayClientOptions {
  const token = readRequired(context.tokenFile, 'admin token file').trim();
  if (token.length === 0) throw new CliError(`the admin token file ${context.tokenFile} is empty`);
  return {
    gateway: context.adminUrl,
    ca: readRequired(context.operatorCertFile, "the operator listener's TLS certificate"),
    auth: { kind: 'admin', token },
  };
}
