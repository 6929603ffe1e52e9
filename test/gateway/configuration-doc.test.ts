/**
 * docs/configuration.md documents every option of the schema with its environment
 * variable, and each documented variable really sets that option.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { ROOT } from '../helpers/gateway-process.js';
import { envName, schemaPaths } from '../helpers/gateway-schema-paths.js';

const doc = readFileSync(join(ROOT, 'docs', 'configuration.md'), 'utf8');

/** A path's value in a loaded config ("smtp.port" → config.smtp.port). */
function valueAt(config: unknown, path: string): unknown {
  return path
    .split('.')
    .reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], config);
}

describe('docs/configuration.md', () => {
  const paths = schemaPaths();

  it('finds the schema options (sanity of the walk)', () => {
    expect(paths).toContain('smtp.port');
    expect(paths).toContain('mailStore.master.passwordFile');
    expect(paths).toContain('keyStore.sentinels[].port');
    expect(paths.length).toBeGreaterThan(30);
  });

  it('documents every option in a table row', () => {
    const missing = paths.filter((path) => !doc.includes(`| \`${path}\` |`));
    expect(missing).toEqual([]);
  });

  it('names the environment variable of every option outside a list', () => {
    const missing = paths
      .filter((path) => !path.includes('[]'))
      .filter((path) => !doc.includes(`\`${envName(path)}\``));
    expect(missing).toEqual([]);
  });

  it('documented variables set what they say (scalar options of the default shapes)', () => {
    const cases: Array<[string, string, unknown]> = [
      ['smtp.port', '2600', 2600],
      ['smtp.maxMessageBytes', '1000', 1000],
      ['smtp.hideSubject', 'true', true],
      ['imap.starttlsPort', '1144', 1144],
      ['imap.allowPlaintextOnLoopback', 'true', true],
      ['admin.tokenFile', 'other.token', 'other.token'],
      ['logLevel', 'warn', 'warn'],
      ['mailStore.lmtpSocket', 'run/lmtp.sock', 'run/lmtp.sock'],
      ['keyStore.path', 'ks.sqlite', 'ks.sqlite'],
    ];
    for (const [path, raw, expected] of cases) {
      expect(doc).toContain(`\`${envName(path)}\``);
      const { config } = loadConfig(undefined, { [envName(path)]: raw });
      expect(valueAt(config, path), path).toEqual(expected);
    }
    const { config } = loadConfig(undefined, {
      RECRYPT_MAIL_STORE__KIND: 'dovecot',
      RECRYPT_MAIL_STORE__IMAP__HOST: 'dovecot',
      RECRYPT_MAIL_STORE__LMTP__HOST: 'dovecot',
      RECRYPT_MAIL_STORE__MASTER__USER: 'gw',
      RECRYPT_MAIL_STORE__MASTER__PASSWORD_FILE: '/run/secrets/master',
    });
    expect(config.mailStore).toEqual({
      kind: 'dovecot',
      imap: { host: 'dovecot', port: 143, tls: false },
      lmtp: { host: 'dovecot', port: 24 },
      master: { user: 'gw', passwordFile: '/run/secrets/master' },
    });
  });
});
