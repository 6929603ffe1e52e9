import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig } from '../../src/config/load.js';

const fixture = (name: string) =>
  fileURLToPath(new URL(`../fixtures/config/${name}`, import.meta.url));

function problemsOf(run: () => unknown): string[] {
  try {
    run();
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('gives embedded defaults with no file', () => {
    const { config } = loadConfig(undefined, {});
    expect(config.keyStore).toEqual({ kind: 'sqlite', path: 'keystore.sqlite' });
    expect(config.mailStore.kind).toBe('embedded');
    expect(config.smtp.port).toBeGreaterThan(1024);
    expect(config.imap.port).toBeGreaterThan(1024);
  });

  it('reads a production file', () => {
    const { config } = loadConfig(fixture('production.yaml'), {});
    expect(config.smtp.port).toBe(25);
    expect(config.keyStore).toEqual({ kind: 'redis', url: 'redis://127.0.0.1:6379' });
    expect(config.mailStore.kind).toBe('dovecot');
    expect(config.dataDir).toBe('/var/lib/recrypt');
  });

  it('reports every problem with its line number', () => {
    const problems = problemsOf(() => loadConfig(fixture('bad-types.yaml'), {}));
    const file = fixture('bad-types.yaml');
    expect(problems).toContainEqual(expect.stringMatching(new RegExp(`^${file}:3: smtp\\.port: `)));
    expect(problems).toContainEqual(expect.stringMatching(/:4: smtp: .*'hostt'/));
    expect(problems).toContainEqual(expect.stringMatching(/:5: keyStore\.url: /));
  });

  it('reports a YAML syntax error with its line', () => {
    const problems = problemsOf(() => loadConfig(fixture('bad-yaml.yaml'), {}));
    expect(problems[0]).toMatch(/bad-yaml\.yaml:3: /);
  });

  it('names a missing file', () => {
    const problems = problemsOf(() => loadConfig('/nonexistent/recrypt.yaml', {}));
    expect(problems).toEqual(['/nonexistent/recrypt.yaml: cannot read: ENOENT']);
  });

  it("reports an unknown section at its own line, not its value's", () => {
    const problems = problemsOf(() => loadConfig(fixture('unknown-section.yaml'), {}));
    expect(problems).toEqual([
      expect.stringMatching(/unknown-section\.yaml:2: \(top level\): .*'smtpp'/),
    ]);
  });

  it('ignores RECRYPT_ variables that name no config section', () => {
    const { config } = loadConfig(undefined, {
      RECRYPT_PASSPHRASE: 'secret',
      RECRYPT_P12_PASSWORD: 'x',
    });
    expect(config.smtp.port).toBe(2525);
  });

  it('lets environment variables override the file', () => {
    const { config } = loadConfig(fixture('production.yaml'), {
      RECRYPT_SMTP__PORT: '2526',
      RECRYPT_DATA_DIR: '/srv/recrypt',
      RECRYPT_SMTP__LOCAL_DOMAINS: '["a.example","b.example"]',
    });
    expect(config.smtp.port).toBe(2526);
    expect(config.dataDir).toBe('/srv/recrypt');
    expect(config.smtp.localDomains).toEqual(['a.example', 'b.example']);
  });

  it('names the environment variable, not a line of the file, when an override is wrong', () => {
    const load = () =>
      loadConfig(fixture('production.yaml'), {
        RECRYPT_SMTP__PORT: 'twenty-five',
        RECRYPT_IMAP__NO_SUCH_OPTION: '1',
      });
    expect(load).toThrow(ConfigError);
    const problems = (() => {
      try {
        load();
        return [];
      } catch (error) {
        return (error as ConfigError).problems;
      }
    })();
    expect(problems).toContainEqual(
      expect.stringMatching(/^environment RECRYPT_SMTP__PORT: smtp\.port: /),
    );
    expect(problems).toContainEqual(
      expect.stringMatching(/^environment RECRYPT_IMAP__NO_SUCH_OPTION: imap: .*'noSuchOption'/),
    );
    expect(problems.join('\n')).not.toContain('production.yaml');
  });
});
