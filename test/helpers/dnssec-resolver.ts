/**
 * A real DNSSEC-validating resolver for tests: Debian's unbound on a free loopback port,
 * serving zones the test writes. Each zone is loaded as an unbound `auth-zone` used for
 * upstream answers only (so the validator checks it as if it came from the zone's
 * servers). A signed zone gets a fresh ECDSA P-256 key (ldns-keygen), is signed with
 * ldns-signzone (NSEC: its NSEC3 chains leave out empty non-terminals such as
 * `_smimecert`, which unbound then cannot prove absent) and its DS becomes a trust anchor: its answers carry the AD bit. An
 * unsigned zone has no anchor (insecure: no AD bit). `afterSigning` edits a signed zone's
 * text after the signatures were made, which makes the changed records bogus (the
 * resolver answers SERVFAIL). unbound's built-in empty zone for `test.` is turned off.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { queryDns } from '../../src/dns/index.js';
import { requireBinary } from './binaries.js';
import { freePort } from './ports.js';
import { tempDir } from './tmp.js';

export interface TestZone {
  /** e.g. "d.test" */
  name: string;
  /** Zone-file lines relative to the zone's origin (SOA and NS are added). */
  records: string[];
  signed: boolean;
  /** Edits the signed zone text (signatures made before it: the changed records are bogus). */
  afterSigning?: (signedZone: string) => string;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export class DnssecResolver {
  private constructor(
    private readonly child: ChildProcess,
    private readonly dir: { remove(): void },
    /** "127.0.0.1:port", as `submission.smimea.resolver` takes it. */
    readonly address: string,
    readonly port: number,
  ) {}

  static async start(zones: TestZone[]): Promise<DnssecResolver> {
    const unbound = requireBinary('unbound');
    requireBinary('ldns-keygen');
    requireBinary('ldns-signzone');
    const dir = tempDir('recrypt-unbound-');
    const anchors: string[] = [];
    const authZones: string[] = [];
    for (const zone of zones) {
      const origin = `${zone.name}.`;
      const text = [
        `$ORIGIN ${origin}`,
        '$TTL 300',
        `@ IN SOA ns.${origin} hostmaster.${origin} 1 3600 600 86400 300`,
        `@ IN NS ns.${origin}`,
        'ns IN A 127.0.0.1',
        ...zone.records,
        '',
      ].join('\n');
      const file = join(dir.path, `${zone.name}.zone`);
      writeFileSync(file, text);
      let served = file;
      if (zone.signed) {
        const key = execFileSync('ldns-keygen', ['-a', 'ECDSAP256SHA256', '-k', zone.name], {
          cwd: dir.path,
          encoding: 'utf8',
        }).trim();
        execFileSync('ldns-signzone', [file, key], { cwd: dir.path });
        served = `${file}.signed`;
        if (zone.afterSigning !== undefined)
          writeFileSync(served, zone.afterSigning(readFileSync(served, 'utf8')));
        anchors.push(join(dir.path, `${key}.ds`));
      }
      authZones.push(
        'auth-zone:',
        `  name: "${zone.name}"`,
        `  zonefile: "${served}"`,
        '  for-downstream: no',
        '  for-upstream: yes',
        '  fallback-enabled: no',
      );
    }
    const port = await freePort();
    const config = [
      'server:',
      '  interface: 127.0.0.1',
      `  port: ${port}`,
      '  do-ip6: no',
      '  do-daemonize: no',
      '  username: ""',
      '  chroot: ""',
      `  directory: "${dir.path}"`,
      '  pidfile: ""',
      '  use-syslog: no',
      '  logfile: ""',
      '  verbosity: 1',
      '  num-threads: 1',
      '  module-config: "validator iterator"',
      '  qname-minimisation: no',
      '  local-zone: "test." nodefault',
      ...anchors.map((file) => `  trust-anchor-file: "${file}"`),
      ...authZones,
      '',
    ].join('\n');
    const configFile = join(dir.path, 'unbound.conf');
    writeFileSync(configFile, config);
    const child = spawn(unbound, ['-d', '-c', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    live.add(child);
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const resolver = new DnssecResolver(child, dir, `127.0.0.1:${port}`, port);
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`unbound exited: ${stderr}`);
      const first = zones[0];
      const ready = await queryDns(
        { host: '127.0.0.1', port },
        `ns.${first?.name ?? 'test'}`,
        'A',
        500,
      )
        .then(() => true)
        .catch(() => false);
      if (ready) return resolver;
      if (Date.now() > deadline) {
        await resolver.stop();
        throw new Error(`unbound did not answer: ${stderr}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGTERM');
      await exited;
    }
    live.delete(this.child);
    this.dir.remove();
  }
}
