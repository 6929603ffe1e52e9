/**
 * What harvesting (src/keydir, docs/sending.md "Certificates harvested from signed mail")
 * costs per stored message, in CPU time of this process (the machine is shared: wall time
 * would measure the neighbours), side by side in one run:
 *
 * * an unsigned 10 KB message: the cost every message pays (the header is read, nothing
 *   more);
 * * a signed one from an RSA 2048 signer (multipart/signed) and from an EC P-256 signer
 *   (opaque signed-data), both made by `openssl cms -sign`: signature verified with pkijs,
 *   certificate checked, the record refreshed in a SQLite key directory.
 *
 * A signed message is never cheaper than an unsigned one (the ordering checked).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHarvester, SqliteKeyDirectory } from '../src/keydir/index.js';
import { compare, expectNotFaster, formatResults, ratio, SanityChecks } from './harness.js';

const PASS = 'Authentication-Results: mx;\r\n dmarc=pass header.from=c.test\r\n';
const PER_SAMPLE = 20;

function signer(dir: string, address: string, key: 'rsa' | 'ec') {
  const keyFile = join(dir, `${key}.key`);
  const certFile = join(dir, `${key}.crt`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      key === 'rsa' ? 'rsa:2048' : 'ec',
      ...(key === 'ec' ? ['-pkeyopt', 'ec_paramgen_curve:P-256'] : []),
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '30',
      '-subj',
      `/CN=${address}`,
      '-addext',
      `subjectAltName=email:${address}`,
      '-addext',
      `keyUsage=digitalSignature,${key === 'rsa' ? 'keyEncipherment' : 'keyAgreement'}`,
    ],
    { stdio: 'pipe' },
  );
  return { keyFile, certFile };
}

function signed(dir: string, address: string, key: 'rsa' | 'ec', body: string, opaque: boolean) {
  const { keyFile, certFile } = signer(dir, address, key);
  const input = join(dir, `${key}.txt`);
  writeFileSync(input, body);
  return execFileSync(
    'openssl',
    [
      'cms',
      '-sign',
      '-signer',
      certFile,
      '-inkey',
      keyFile,
      '-in',
      input,
      '-text',
      '-from',
      address,
      '-to',
      'alice@a.test',
      '-subject',
      'bench',
      '-crlfeol',
      ...(opaque ? ['-nodetach'] : []),
    ],
    { stdio: 'pipe' },
  );
}

export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'recrypt-bench-harvest-'));
  const directory = new SqliteKeyDirectory(join(dir, 'keys.sqlite'));
  const harvester = createHarvester({
    directory,
    settings: {
      maxPerAddress: 3,
      maxMessageBytes: 4 * 1024 * 1024,
      maxSignatureBytes: 64 * 1024,
      timeoutMs: 10_000,
      maxPending: 16,
      requireDmarcPass: true,
    },
    isLocalDomain: (domain) => domain === 'a.test',
  });
  const line = 'x'.repeat(76) + '\r\n';
  const body = line.repeat(Math.ceil((10 * 1024) / line.length));
  const unsigned = Buffer.from(
    `From: bob@c.test\r\nTo: alice@a.test\r\nSubject: bench\r\n\r\n${body}`,
  );
  const rsa = signed(dir, 'bob@c.test', 'rsa', body, false);
  const ec = signed(dir, 'erin@c.test', 'ec', body, true);
  for (const [name, message] of [
    ['rsa', rsa],
    ['ec', ec],
  ] as const) {
    const outcome = await harvester.harvest(message, PASS);
    if (!outcome.harvested) throw new Error(`${name} signer not harvested: ${outcome.reason}`);
  }
  /** CPU µs per message over PER_SAMPLE messages. */
  const cpu = (message: Buffer) => async () => {
    const started = process.cpuUsage();
    for (let i = 0; i < PER_SAMPLE; i++) await harvester.harvest(message, PASS);
    const used = process.cpuUsage(started);
    return (used.user + used.system) / PER_SAMPLE;
  };
  try {
    console.log('CPU µs per stored message offered to the harvester (10 KB body):');
    const results = await compare(
      [
        { name: 'unsigned', run: cpu(unsigned) },
        { name: 'signed, RSA 2048 detached', run: cpu(rsa) },
        { name: 'signed, EC P-256 opaque', run: cpu(ec) },
      ],
      { rounds: 9 },
    );
    console.log(formatResults(results, 'µs'));
    for (const name of ['signed, RSA 2048 detached', 'signed, EC P-256 opaque'])
      console.log(`  ${name} / unsigned: ${ratio(results, name, 'unsigned')}`);
    const checks = new SanityChecks();
    for (const name of ['signed, RSA 2048 detached', 'signed, EC P-256 opaque'])
      checks.check(() => expectNotFaster(results, name, 'unsigned'));
    checks.throwIfAny();
  } finally {
    await directory.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
