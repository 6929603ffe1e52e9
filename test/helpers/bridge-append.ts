/**
 * What the tests of the bridge's own APPEND encryption share (src/bridge/append-encrypt.ts,
 * src/bridge/group-certificate.ts): Python's imaplib APPENDing to Drafts through a
 * bridge, the gateway's Drafts read straight from its Maildir, the published profile and
 * group certificate fetched with curl, the recipients of a stored envelope and the serial
 * of a certificate as openssl prints them, and an HTTPS server with the gateway's own TLS
 * key for profiles the test serves itself.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { RequestListener } from 'node:http';
import { join } from 'node:path';
import type { RunningBridge } from '../../src/bridge/bridge.js';
import { ADDRESS, imaplibJson, type BridgeWorld } from './bridge-world.js';

export interface AppendResult {
  /** imaplib's answer type: OK, NO or BAD. */
  typ: string;
  /** The text of the tagged answer. */
  response: string;
  /** The APPENDUID's UID (0 when refused). */
  uid: number;
  /** The message read back through the bridge by that UID ('' when refused). */
  body: string;
}

/**
 * imaplib APPENDs `message` to Drafts through the bridge's TLS port (with `flags`, an
 * IMAP flag list or none), then reads it back by its APPENDUID.
 */
export async function appendWithImaplib(
  bridge: RunningBridge,
  message: string,
  flags: string | null = null,
): Promise<AppendResult> {
  const script = `
import imaplib, ssl, sys, json, re
ctx = ssl.create_default_context(cafile=sys.argv[2])
m = imaplib.IMAP4_SSL('127.0.0.1', int(sys.argv[1]), ssl_context=ctx, timeout=30)
m.login(sys.argv[3], sys.argv[4])
flags = sys.argv[6] or None
typ, data = m.append('Drafts', flags, None, sys.argv[5].encode())
if typ != 'OK':
    print(json.dumps({'typ': typ, 'response': data[0].decode(), 'uid': 0, 'body': ''}))
    sys.exit(0)
uid = re.search(rb'APPENDUID \\d+ (\\d+)', data[0]).group(1).decode()
m.select('Drafts')
typ2, fetched = m.uid('FETCH', uid, '(BODY.PEEK[])')
m.logout()
print(json.dumps({'typ': typ, 'response': data[0].decode(), 'uid': int(uid),
  'body': fetched[0][1].decode('utf-8', 'replace')}))
`;
  return imaplibJson<AppendResult>(bridge, script, message, flags ?? '');
}

/** Every message file of the gateway's Drafts as its Maildir holds them, oldest first (by name: Maildir names start with the time). */
export function storedDrafts(world: BridgeWorld): Buffer[] {
  const drafts = join(world.gateway.dataDir, 'mail', ADDRESS, 'Maildir', '.Drafts');
  return ['new', 'cur']
    .map((sub) => join(drafts, sub))
    .filter((path) => existsSync(path))
    .flatMap((path) => readdirSync(path).map((name) => join(path, name)))
    .sort((a, b) => a.split('/').pop()!.localeCompare(b.split('/').pop()!))
    .map((path) => readFileSync(path));
}

/** The published profile (`suffix` '') or group certificate ('/group.cer'), fetched with curl (docs/profile.md §5). */
export function published(world: BridgeWorld, suffix: '' | '/group.cer'): Buffer {
  return execFileSync('curl', [
    '-sf',
    '--cacert',
    world.gateway.certFile,
    `https://127.0.0.1:${world.gateway.ports.admin}/.well-known/mail-profile/${encodeURIComponent(ADDRESS)}${suffix}`,
  ]);
}

/** Issuer serial numbers (hex) of an S/MIME message's recipient infos, as openssl prints them. */
export function recipientSerials(message: Buffer, scratch: string): string[] {
  const file = join(scratch, 'stored.eml');
  writeFileSync(file, message);
  const printed = execFileSync('openssl', ['cms', '-cmsout', '-print', '-in', file], {
    encoding: 'utf8',
  });
  // Decimal, or 0x-hex for some sizes, depending on the openssl version.
  return [...printed.matchAll(/serialNumber: *(0x[0-9A-Fa-f]+|\d+)/g)].map((m) =>
    BigInt(m[1]!).toString(16),
  );
}

/** The serial number (hex) of a DER certificate, as openssl prints it. */
export function serialOf(certificate: Buffer, scratch: string): string {
  const file = join(scratch, 'group.cer');
  writeFileSync(file, certificate);
  const out = execFileSync(
    'openssl',
    ['x509', '-inform', 'DER', '-in', file, '-noout', '-serial'],
    { encoding: 'utf8' },
  );
  return BigInt(`0x${out.trim().replace(/^serial=/, '')}`).toString(16);
}

/**
 * An HTTPS server on a free loopback port with the gateway's own TLS key and certificate,
 * so the bridge trusts the transport as it would the gateway's: what it serves is judged
 * by its signature alone.
 */
export async function serveWithGatewayKey(
  world: BridgeWorld,
  listener: RequestListener,
): Promise<{ url: string; close: () => Promise<void> }> {
  const tls = join(world.gateway.dataDir, 'tls');
  const server: Server = createServer(
    { key: readFileSync(join(tls, 'key.pem')), cert: readFileSync(join(tls, 'cert.pem')) },
    listener,
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  let closed: Promise<void> | null = null;
  return {
    url: `https://127.0.0.1:${port}`,
    close: () =>
      (closed ??= new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      })),
  };
}
