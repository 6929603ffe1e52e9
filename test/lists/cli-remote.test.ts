/**
 * A remote member end to end: a real `recrypt start` process; a list owner's
 * CLI creates a list and invites an address of another domain with --remote; that person,
 * with nothing but an openssl-made certificate and an OpenSSL 3 default .p12, runs
 * `recrypt list join` on their own machine; the owner admits the join token; `list show`
 * marks them remote, and the gateway's key store holds rk with rk·D = G_list, before and
 * after `list rotate`. Then posts through the gateway's MX (swaks): Carol's copy leaves
 * through the outbound queue, arrives at her provider's MX (a real SMTP server here) and
 * decrypts with her own key; on a moderated list a stranger's post is held until the
 * owner's `recrypt list held` reads it and `recrypt list approve` releases it.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOrCreateGatewayKey, openKeyStore } from '../../src/keystore/index.js';
import { readOwnerKeyFile } from '../../src/owner/key-file.js';
import { readListKeyFile } from '../../src/owner/list-key-file.js';
import { certificatePublicPoint, multiplyPoint } from '../../src/recrypt/index.js';
import { requireBinary } from '../helpers/binaries.js';
import { runCli } from '../helpers/cli-run.js';
import { type Spawned } from '../helpers/gateway-process.js';
import {
  freeGatewayPorts,
  startGatewayProcess,
  writeGatewayConfig,
  type GatewayPorts,
} from '../helpers/gateway-instance.js';
import { RemoteMx } from '../helpers/outbound-remote.js';
import { decryptWith } from '../helpers/proxy-pki.js';
import { makeRemoteIdentity, type RemoteIdentity } from '../helpers/remote-identity.js';
import { swaks, swaksReplies } from '../helpers/smtp-senders.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir('recrypt-remote-cli-');
const configFile = join(tmp.path, 'recrypt.yaml');
const dataDir = join(tmp.path, 'data');
const certFile = join(dataDir, 'tls', 'cert.pem');
const OWNER = 'lead@example.org';
const LIST = 'team@example.org';
const REMOTE = 'Carol@Elsewhere.example';
const PASSPHRASE = 'correct horse battery staple';
const P12_PASSWORD = 'carol p12 password';
let ports: GatewayPorts;
let gateway: Spawned | undefined;
const ownerDir = join(tmp.path, 'owner');
const remoteDir = join(tmp.path, 'carol');
let carol: RemoteIdentity;
let remoteMx: RemoteMx;

const owner = (args: string[]) =>
  runCli(args, { cwd: ownerDir, env: { RECRYPT_PASSPHRASE: PASSPHRASE } });

/** Does the key the gateway holds for the remote member map D to the list group's key? */
async function remoteKeyMapsTo(groupId: string, listCertificate: Uint8Array): Promise<boolean> {
  const keyStore = await openKeyStore(
    { kind: 'sqlite', path: 'keystore.sqlite' },
    { gatewayKey: loadOrCreateGatewayKey(dataDir), dataDir },
  );
  try {
    const key = (await keyStore.listKeysForMember(REMOTE)).find((k) => k.groupId === groupId);
    if (key === undefined) return false;
    const moved = multiplyPoint(certificatePublicPoint(carol.der), key.rk);
    return Buffer.from(moved).equals(Buffer.from(certificatePublicPoint(listCertificate)));
  } finally {
    await keyStore.close();
  }
}

beforeAll(async () => {
  for (const name of ['curl', 'openssl']) requireBinary(name);
  mkdirSync(remoteDir);
  // Carol's certificate is made by openssl processes while the gateway starts.
  const carolMade = makeRemoteIdentity({
    dir: remoteDir,
    name: 'carol',
    address: REMOTE,
    keyUsage: 'digitalSignature,keyAgreement',
    p12Password: P12_PASSWORD,
  });
  // Awaited below; if the gateway fails first, that is the failure reported.
  carolMade.catch(() => undefined);
  ports = await freeGatewayPorts();
  remoteMx = await RemoteMx.start();
  writeGatewayConfig(tmp.path, ports, [
    // Carol's provider: its MX is the test's SMTP server (there is no DNS here).
    `outbound: { routes: { elsewhere.example: '127.0.0.1:${remoteMx.port}' }, retryInitial: 1s }`,
  ]);
  gateway = await startGatewayProcess(configFile, ports);
  const added = await runCli(['user', 'add', OWNER, '--config', configFile], { cwd: tmp.path });
  expect(added.stderr).toBe('');
  const token = /enrolment token .*: (\S+)$/m.exec(added.stdout)![1]!;
  mkdirSync(ownerDir);
  copyFileSync(certFile, join(ownerDir, 'gateway-cert.pem'));
  const init = await owner([
    'owner',
    'init',
    OWNER,
    '--token',
    token,
    '--gateway',
    `https://127.0.0.1:${ports.admin}`,
    '--ca',
    'gateway-cert.pem',
  ]);
  expect(init.stderr).toBe('');
  carol = await carolMade;
}, 180_000);

afterAll(async () => {
  await gateway?.stop(5000);
  await remoteMx?.close();
  tmp.remove();
});

describe('recrypt list join (a remote member)', () => {
  it('invite --remote, join with an OpenSSL 3 .p12, admit, show, rotate', async () => {
    expect((await owner(['list', 'create', LIST])).code).toBe(0);
    const invited = await owner(['list', 'invite', LIST, REMOTE, '--remote']);
    expect(invited.stderr).toBe('');
    const invitation = invited.stdout.split('\n').find((l) => l.startsWith('rli1.'));
    expect(invitation).toBeDefined();
    const fingerprint = execFileSync(
      'openssl',
      ['x509', '-in', certFile, '-noout', '-fingerprint', '-sha256'],
      {
        encoding: 'utf8',
      },
    )
      .trim()
      .split('=')[1]!;
    expect(invited.stdout).toContain(`certificate SHA-256 ${fingerprint}`);

    // Carol's machine: no owner key, no account; only her .p12 and the invitation.
    const joined = await runCli(
      ['list', 'join', invitation!, '--p12', carol.p12File!, '--password-file', 'carol.p12pass'],
      { cwd: remoteDir },
    );
    expect(joined.stderr).toBe('');
    expect(joined.code).toBe(0);
    expect(joined.stdout).toContain(fingerprint);
    const joinToken = joined.stdout.split('\n').find((l) => l.startsWith('rlj1.'));
    expect(joinToken).toBeDefined();
    // The invite was used up by that join.
    const again = await runCli(
      ['list', 'join', invitation!, '--key', carol.keyFile, '--cert', carol.certFile],
      { cwd: remoteDir },
    );
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/invite already used/);

    const admitted = await owner(['list', 'admit', joinToken!]);
    expect(admitted.stderr).toBe('');
    expect(admitted.stdout).toContain(`${REMOTE.toLowerCase()} joined ${LIST}`);
    const carolFingerprint = execFileSync(
      'openssl',
      ['x509', '-in', carol.certFile, '-noout', '-fingerprint', '-sha256'],
      { encoding: 'utf8' },
    )
      .trim()
      .split('=')[1]!;
    expect(admitted.stdout).toContain(`certificate SHA-256 ${carolFingerprint}`);
    // The owner's `list show` and this test's read of the owner key file: at once.
    const listFile = join(ownerDir, `${LIST}.list.key`);
    const [shown, ownerKey] = await Promise.all([
      owner(['list', 'show', LIST]),
      readOwnerKeyFile(join(ownerDir, 'owner.key'), PASSPHRASE),
    ]);
    expect(shown.stdout).toMatch(new RegExp(`member ${REMOTE.toLowerCase()} \\(remote, since `));
    const first = readListKeyFile(listFile, ownerKey).groups[0]!;
    expect(await remoteKeyMapsTo(first.groupId, first.certificate)).toBe(true);

    const rotated = await owner(['list', 'rotate', LIST]);
    expect(rotated.stderr).toBe('');
    const next = readListKeyFile(listFile, ownerKey).groups[1]!;
    expect(await remoteKeyMapsTo(next.groupId, next.certificate)).toBe(true);
    expect(await remoteKeyMapsTo(next.groupId, first.certificate)).toBe(false);
  });

  it('posts reach the remote member over SMTP; a moderated post waits for approval', async () => {
    const post = async (from: string, subject: string, marker: string) =>
      swaks(
        [
          '--server',
          '127.0.0.1',
          '--port',
          String(ports.smtp),
          '--from',
          from,
          '--to',
          LIST,
          '--tls-optional',
        ],
        Buffer.from(
          `From: <${from}>\r\nTo: <${LIST}>\r\nSubject: ${subject}\r\n` +
            `Message-ID: <${subject.length}.${Date.now()}@example.org>\r\n\r\n${marker}\r\n`,
        ),
      );
    const decryptForCarol = (raw: Buffer) =>
      decryptWith(raw, { certDer: carol.der, certPath: carol.certFile, keyPath: carol.keyFile });

    const sent = await post(OWNER, 'plans', 'REMOTEPOST1');
    expect(swaksReplies(sent.transcript).at(-2)).toMatch(/^250 .*queued for 1 remote member/);
    const [copy] = await remoteMx.waitFor(1);
    expect(copy!.mailFrom).toBe('team-bounces@example.org');
    expect(copy!.to).toEqual([REMOTE.toLowerCase()]);
    expect(copy!.bytes.includes(Buffer.from('REMOTEPOST1'))).toBe(false);
    const plain = (await decryptForCarol(copy!.bytes)).toString('latin1');
    expect(plain).toContain('REMOTEPOST1');
    expect(plain).toContain('List-Id: <team.example.org>');

    expect((await owner(['list', 'policy', LIST, 'moderated'])).code).toBe(0);
    const held = await post('stranger@example.net', 'may I post?', 'HELDPOST2');
    expect(swaksReplies(held.transcript).at(-2)).toMatch(/^250 .*held for moderation/);
    const shown = await owner(['list', 'held', LIST]);
    expect(shown.stderr).toBe('');
    expect(shown.stdout).toContain('may I post?');
    const id = /\b([0-9a-f]{32})\b/.exec(shown.stdout)![1]!;
    expect(remoteMx.received).toHaveLength(1);
    const approved = await owner(['list', 'approve', LIST, id]);
    expect(approved.stderr).toBe('');
    const copies = await remoteMx.waitFor(2);
    const [released, heldAfter] = await Promise.all([
      decryptForCarol(copies[1]!.bytes),
      owner(['list', 'held', LIST]),
    ]);
    expect(released.toString('latin1')).toContain('HELDPOST2');
    expect(heldAfter.stdout).not.toContain(id);

    // The gateway kept posts, held posts and queued copies only as ciphertext.
    const files = readdirSync(dataDir, { recursive: true, withFileTypes: true })
      .filter((entry) => entry.isFile())
      .map((entry) => join(entry.parentPath, entry.name));
    expect(files.some((file) => file.endsWith('keystore.sqlite'))).toBe(true);
    for (const file of [...files, configFile])
      for (const marker of ['REMOTEPOST1', 'HELDPOST2'])
        expect(readFileSync(file).includes(Buffer.from(marker))).toBe(false);
  });
});
