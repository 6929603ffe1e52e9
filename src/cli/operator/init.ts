/**
 * `recrypt init`: everything a gateway needs before its first start, made once and never
 * replaced: the data directory (0700), a config file with every default written out, the
 * self-signed TLS certificate, the operator's admin token (0600) and the gateway key
 * that wraps recryption keys at rest. Running it again keeps what exists.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { loadConfig } from '../../config/load.js';
import { configSchema } from '../../config/schema.js';
import { ensureTlsMaterial } from '../../config/tls.js';
import { GATEWAY_KEY_FILE, loadOrCreateGatewayKey } from '../../keystore/index.js';
import { commitTemp, discardTemp, OwnerError, writeTemp } from '../../owner/index.js';
import { CliError, EXIT_USAGE } from '../errors.js';
import { resolveOperatorContext } from './context.js';

export interface InitOptions {
  configFile: string;
  dataDir?: string;
}

export interface InitReport {
  configFile: string;
  dataDir: string;
  /** One entry per thing: `created <path>` or `kept <path>`. */
  lines: string[];
}

const CONFIG_HEADER = `# recrypt gateway configuration (written by \`recrypt init\`; every option is at its default).
# docs/configuration.md describes each option. Check changes with \`recrypt config check <file>\`.
`;

/** Creates `path` with `data` unless it exists; true when created. */
function createOnce(path: string, data: string, mode: number): boolean {
  if (existsSync(path)) return false;
  const temp = writeTemp(path, data, mode);
  try {
    commitTemp(temp, path);
  } catch (error) {
    discardTemp(temp);
    // Another init got there first: theirs stands.
    if (error instanceof OwnerError && error.code === 'exists') return false;
    throw error;
  }
  return true;
}

export async function initGateway(options: InitOptions): Promise<InitReport> {
  const configFile = resolve(options.configFile);
  const lines: string[] = [];
  let dataDir: string;
  if (existsSync(configFile)) {
    dataDir = loadConfig(configFile).config.dataDir;
    if (options.dataDir !== undefined && resolve(options.dataDir) !== dataDir) {
      throw new CliError(
        `${configFile} already names the data directory ${dataDir}; not changing it to ${resolve(options.dataDir)}`,
        EXIT_USAGE,
      );
    }
    lines.push(`kept    ${configFile}`);
  } else {
    dataDir = resolve(options.dataDir ?? join(dirname(configFile), 'data'));
    mkdirSync(dirname(configFile), { recursive: true });
    const config = configSchema.parse({ dataDir });
    const created = createOnce(configFile, CONFIG_HEADER + stringify(config), 0o600);
    lines.push(`${created ? 'created' : 'kept   '} ${configFile}`);
  }
  const context = resolveOperatorContext(configFile);
  const hadDataDir = existsSync(dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  lines.push(`${hadDataDir ? 'kept   ' : 'created'} ${dataDir}/`);

  // The gateway's own certificate: every listener's without `tls` or `acme`, and always
  // the operator listener's (src/gateway/start.ts), so it is made whatever the config says.
  const tls = await ensureTlsMaterial(dataDir, undefined, new Date(), context.config.hostname);
  const servedBy =
    context.config.tls === undefined && context.config.acme === undefined
      ? 'every listener'
      : 'the operator listener';
  lines.push(
    `${tls.generated ? 'created' : 'kept   '} ${tls.certFile} (TLS certificate${tls.generated ? ', self-signed' : ''}, ${servedBy})`,
  );

  const tokenCreated = createOnce(
    context.tokenFile,
    `${randomBytes(32).toString('base64url')}\n`,
    0o600,
  );
  lines.push(`${tokenCreated ? 'created' : 'kept   '} ${context.tokenFile} (admin token)`);

  const keyPath = join(dataDir, GATEWAY_KEY_FILE);
  const hadKey = existsSync(keyPath);
  loadOrCreateGatewayKey(dataDir);
  lines.push(`${hadKey ? 'kept   ' : 'created'} ${keyPath} (gateway key)`);
  return { configFile, dataDir, lines };
}
