/**
 * The deployment files stay consistent with the code: the example configs validate, the
 * compose file's RECRYPT_* variables are real options and make a valid config whose
 * ports are the ones published and whose hosts are the compose services, and the
 * Dockerfile is multi-stage, unprivileged, and exposes the config's ports. (No Docker
 * engine here: the files are parsed, not run.)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';
import { ROOT } from '../helpers/gateway-process.js';
import { envName, schemaPaths } from '../helpers/gateway-schema-paths.js';

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  environment?: Record<string, string>;
  ports?: string[];
  expose?: string[];
  secrets?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  stop_grace_period?: string;
}

const compose = parse(readFileSync(join(ROOT, 'docker', 'compose.yaml'), 'utf8')) as {
  services: Record<string, ComposeService>;
  secrets: Record<string, { file: string }>;
};
const dockerfile = readFileSync(join(ROOT, 'docker', 'Dockerfile'), 'utf8');

describe('example configs', () => {
  it('config/embedded.yaml is exactly the defaults', () => {
    const file = join(ROOT, 'config', 'embedded.yaml');
    const { config } = loadConfig(file, {});
    const defaults = loadConfig(undefined, {}).config;
    expect({ ...config, dataDir: 'x' }).toEqual({ ...defaults, dataDir: 'x' });
  });

  it('config/production.yaml validates: Dovecot, Redis, real certificates, standard ports', () => {
    const { config } = loadConfig(join(ROOT, 'config', 'production.yaml'), {});
    expect(config.mailStore.kind).toBe('dovecot');
    expect(config.keyStore.kind).toBe('redis');
    expect(config.tls).toBeDefined();
    expect([config.smtp.port, config.imap.port, config.imap.starttlsPort]).toEqual([25, 993, 143]);
  });
});

describe('docker/compose.yaml', () => {
  const gateway = compose.services.gateway!;
  const environment = gateway.environment ?? {};

  it('has the gateway, redis and dovecot services, built from this repository', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['dovecot', 'gateway', 'redis']);
    expect(gateway.build?.dockerfile).toBe('docker/Dockerfile');
    expect(compose.services.dovecot!.build?.dockerfile).toBe('docker/dovecot/Dockerfile');
    expect(compose.services.redis!.image).toMatch(/^redis:/);
  });

  it('starts the gateway after its stores are healthy, and gives it its drain time to stop', () => {
    for (const store of ['redis', 'dovecot']) {
      expect(gateway.depends_on?.[store]).toEqual({ condition: 'service_healthy' });
      expect(compose.services[store]!.healthcheck?.test.length).toBeGreaterThan(0);
    }
    // SMTP transactions in flight get 60 s (src/smtp/mx-server.ts closeTimeout).
    const grace = /^(\d+)s$/.exec(gateway.stop_grace_period ?? '')?.[1];
    expect(Number(grace)).toBeGreaterThanOrEqual(60);
  });

  it('sets only RECRYPT_* variables that name real options', () => {
    const known = new Set(schemaPaths().map(envName));
    const unknown = Object.keys(environment).filter((name) => !known.has(name));
    expect(unknown).toEqual([]);
  });

  it('makes a valid config whose hosts are the compose services', () => {
    const { config } = loadConfig(undefined, environment);
    expect(config.dataDir).toBe('/var/lib/recrypt');
    expect(config.keyStore).toEqual({ kind: 'redis', url: 'redis://redis:6379/0' });
    const store = config.mailStore;
    if (store.kind !== 'dovecot') throw new Error('compose must run Dovecot as the mail store');
    expect(store.imap.host).toBe('dovecot');
    expect(store.lmtp.host).toBe('dovecot');
    const dovecotPorts = compose.services.dovecot!.expose ?? [];
    expect(dovecotPorts.map(Number).sort()).toEqual([store.imap.port, store.lmtp.port].sort());
    // The master password file is the secret shared with Dovecot.
    expect(store.master.passwordFile).toBe('/run/secrets/dovecot_master');
    expect(gateway.secrets).toContain('dovecot_master');
    expect(compose.services.dovecot!.secrets).toContain('dovecot_master');
    expect(compose.services.dovecot!.environment?.DOVECOT_MASTER_USER).toBe(store.master.user);
    expect(compose.secrets.dovecot_master).toBeDefined();
  });

  it('publishes exactly the ports the gateway listens on, the standard ones outside', () => {
    const { config } = loadConfig(undefined, environment);
    const published = new Map(
      (gateway.ports ?? [])
        .map((p) => p.split(':').map(Number) as [number, number])
        .map(([host, container]) => [container, host]),
    );
    const listening = [
      config.smtp.port,
      config.imap.port,
      config.imap.starttlsPort,
      config.admin.port,
    ];
    expect([...published.keys()].sort()).toEqual([...listening].sort());
    expect(published.get(config.smtp.port)).toBe(25);
    expect(published.get(config.imap.port)).toBe(993);
    expect(published.get(config.imap.starttlsPort)).toBe(143);
    // Reachable from outside the container.
    expect(config.smtp.host).toBe('0.0.0.0');
    expect(config.imap.host).toBe('0.0.0.0');
    expect(config.admin.host).toBe('0.0.0.0');
    // The operator listener (accounts, /readyz, /metrics) is neither published nor exposed.
    expect(published.has(config.operator.port)).toBe(false);
    expect(config.operator.host).toBe('127.0.0.1');
  });
});

describe('the Docker build context', () => {
  const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n');
  const gitignored = readFileSync(join(ROOT, '.gitignore'), 'utf8').split('\n');

  it('keeps local state and secrets out of the image', () => {
    for (const entry of ['data/', 'owner/', 'docker/secrets/', '*.p12', '*.key', 'node_modules']) {
      expect(ignored).toContain(entry);
    }
  });

  it('keeps the compose secrets directory out of git', () => {
    expect(gitignored).toContain('/docker/secrets/');
  });
});

describe('docker/Dockerfile', () => {
  it('is multi-stage on a maintained Node LTS (22 or 24) and runs unprivileged', () => {
    const froms = dockerfile.match(/^FROM .+$/gm) ?? [];
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const from of froms) expect(from).toMatch(/^FROM node:(22|24)-slim\b/);
    const user = /^USER (\S+)$/m.exec(dockerfile)?.[1];
    expect(user).toBeDefined();
    expect(['root', '0']).not.toContain(user);
    expect(dockerfile).toMatch(/^ENTRYPOINT \["node", "dist\/cli\/main\.js"\]$/m);
    expect(dockerfile).toMatch(/^CMD \["start"\]$/m);
  });

  it('exposes the default ports of the config and uses the image data dir', () => {
    const defaults = configSchema.parse({});
    const exposed = (/^EXPOSE (.+)$/m.exec(dockerfile)?.[1] ?? '').split(/\s+/).map(Number);
    expect(exposed.sort()).toEqual(
      [
        defaults.smtp.port,
        defaults.imap.port,
        defaults.imap.starttlsPort,
        defaults.admin.port,
      ].sort(),
    );
    expect(dockerfile).toMatch(/RECRYPT_DATA_DIR=\/var\/lib\/recrypt/);
    // The health check asks /readyz on the configured operator port, the default otherwise.
    expect(dockerfile).toContain(
      `port:Number(process.env.RECRYPT_OPERATOR__PORT||${defaults.operator.port}),path:'/readyz'`,
    );
  });
});
