/**
 * The MX behind a load balancer that speaks the PROXY protocol (smtp.proxyProtocol): swaks
 * plays the balancer (its --proxy-* options) with v1 and v2 headers, and the stored
 * message's Received header and SPF result are the header's client, not the TCP peer
 * (127.0.0.1). The fixture DNS lets 127.0.0.1 send for sender.example and only 192.0.2.1
 * for spoofed.example, so each verdict shows which address SPF saw. The per-IP cap counts
 * the header's address; a balancer without a header, a malformed header and a peer that
 * is not a trusted balancer are closed before the greeting, and logged.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { proxyV1 } from '../helpers/proxy-protocol-client.js';
import { type Harness, LOCAL_DOMAIN, startHarness } from '../helpers/smtp-harness.js';
import { findStored } from '../helpers/smtp-readback.js';
import { opensslDecrypt } from '../helpers/smtp-openssl-encryptor.js';
import { swaks, swaksReplies } from '../helpers/smtp-senders.js';

let harness: Harness;
const alice = `alice@${LOCAL_DOMAIN}`;

beforeAll(async () => {
  harness = await startHarness({
    proxyProtocol: { trusted: ['127.0.0.1', '::1'] },
    maxClientsPerIp: 1,
  });
});

afterAll(async () => {
  await harness?.stop();
});

function message(messageId: string, from: string): Buffer {
  return Buffer.from(
    `From: ${from}\r\nTo: ${alice}\r\nSubject: through the balancer\r\n` +
      `Message-ID: <${messageId}>\r\n\r\nHello.\r\n`,
  );
}

async function sendThroughBalancer(
  proxyArgs: string[],
  from: string,
): Promise<{ trace: string; transcript: string }> {
  const messageId = `proxy.${randomBytes(6).toString('hex')}@sender.example`;
  const original = message(messageId, from);
  const result = await swaks(
    [
      '--server',
      '127.0.0.1',
      '--port',
      String(harness.mx.port),
      '--ehlo',
      'client.example',
      '--from',
      from,
      '--to',
      alice,
      ...proxyArgs,
    ],
    original,
  );
  expect(swaksReplies(result.transcript).at(-2) ?? result.transcript).toMatch(/^250 /);
  const [stored] = await findStored(harness, 'alice', messageId);
  expect(stored).toBeDefined();
  // swaks sends the message in its own line endings: the MX's fields are those before it.
  const content = (await opensslDecrypt(stored!, harness.groups.alice)).toString('utf8');
  const trace = content.slice(0, content.indexOf(`From: ${from}`));
  expect(content).toContain(`Message-ID: <${messageId}>`);
  return { trace, transcript: result.transcript };
}

const logLines = (): Record<string, unknown>[] =>
  readFileSync(harness.logFile, 'utf8')
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);

/** Connects as the balancer, sends `bytes`, returns what the MX said before closing. */
async function rawConnection(bytes: Buffer, host = '127.0.0.1'): Promise<string> {
  const socket = connect(harness.mx.port, host);
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString()));
  socket.on('error', () => undefined);
  const closed = once(socket, 'close');
  await once(socket, 'connect');
  socket.write(bytes);
  await closed;
  return received;
}

describe('MX with the PROXY protocol', () => {
  it('v1 (TCP4): Received and SPF see the header address', async () => {
    const { trace } = await sendThroughBalancer(
      [
        '--proxy-version',
        '1',
        '--proxy-family',
        'TCP4',
        '--proxy-source',
        '192.0.2.1',
        '--proxy-source-port',
        '40001',
        '--proxy-dest',
        '198.51.100.25',
        '--proxy-dest-port',
        '25',
      ],
      'someone@spoofed.example',
    );
    expect(trace).toMatch(/^Received: from client\.example \(\[192\.0\.2\.1\]\)/);
    // 192.0.2.1 is the one address spoofed.example's SPF record allows.
    expect(trace).toMatch(/Received-SPF: pass[^\r\n]*\r?\n?[^]*client-ip=192\.0\.2\.1/);
    expect(trace).toContain('spf=pass');
  });

  it('v2 (AF_INET6): Received and SPF see the header address', async () => {
    const { trace } = await sendThroughBalancer(
      [
        '--proxy-version',
        '2',
        '--proxy-family',
        'AF_INET6',
        '--proxy-source',
        '2001:db8::25',
        '--proxy-source-port',
        '40002',
        '--proxy-dest',
        '2001:db8::1',
        '--proxy-dest-port',
        '25',
      ],
      'someone@sender.example',
    );
    expect(trace).toMatch(/^Received: from client\.example \(\[IPv6:2001:db8::25\]\)/);
    // sender.example allows only 127.0.0.1, the TCP peer: SPF judged the header's address.
    expect(trace).toMatch(/Received-SPF: fail[^]*client-ip=2001:db8::25/);
    expect(trace).toContain('spf=fail');
  });

  it('counts the per-IP connection cap by the header address', async () => {
    const first = connect(harness.mx.port, '127.0.0.1');
    first.on('error', () => undefined);
    await once(first, 'connect');
    first.write(proxyV1('203.0.113.61', 1000));
    const [greeting] = (await once(first, 'data')) as [Buffer];
    expect(greeting.toString()).toMatch(/^220 /);
    try {
      // Same client address through the same balancer: over maxClientsPerIp (1).
      const again = rawConnection(Buffer.concat([proxyV1('203.0.113.61', 1001)]));
      expect(await again).toMatch(/^421 4\.7\.0 /);
      // Another client through the same balancer is served.
      const other = connect(harness.mx.port, '127.0.0.1');
      other.on('error', () => undefined);
      await once(other, 'connect');
      other.write(proxyV1('203.0.113.62', 1002));
      const [otherGreeting] = (await once(other, 'data')) as [Buffer];
      expect(otherGreeting.toString()).toMatch(/^220 /);
      other.destroy();
    } finally {
      first.destroy();
    }
    expect(
      logLines().some((line) => line.msg === 'too many connections' && line.ip === '203.0.113.61'),
    ).toBe(true);
  });

  it('closes a balancer connection without a header, or with a malformed one, unanswered', async () => {
    expect(await rawConnection(Buffer.from('EHLO client.example\r\n'))).toBe('');
    expect(await rawConnection(Buffer.from('PROXY TCP4 999.1.1.1 10.0.0.1 1 25\r\n'))).toBe('');
    expect(await rawConnection(Buffer.from(`PROXY TCP4 ${'1'.repeat(200)}\r\n`))).toBe('');
    const refused = logLines().filter(
      (line) => line.msg === 'PROXY protocol: no valid header, connection refused',
    );
    expect(refused.length).toBeGreaterThanOrEqual(3);
    expect(refused.at(-1)).toMatchObject({ listener: 'smtp', ip: '127.0.0.1' });
    // And the MX still serves.
    const { trace } = await sendThroughBalancer(
      [
        '--proxy-family',
        'TCP4',
        '--proxy-source',
        '127.0.0.1',
        '--proxy-source-port',
        '1',
        '--proxy-dest',
        '127.0.0.1',
        '--proxy-dest-port',
        '25',
      ],
      'someone@sender.example',
    );
    expect(trace).toContain('spf=pass');
  });
});

describe('MX with the PROXY protocol from another balancer only', () => {
  let strict: Harness;
  beforeAll(async () => {
    strict = await startHarness({ proxyProtocol: { trusted: ['10.0.0.0/8'] } });
  });
  afterAll(async () => {
    await strict?.stop();
  });

  it('refuses a peer that is not a trusted balancer, even with a header, and logs it', async () => {
    const result = await swaks([
      '--server',
      '127.0.0.1',
      '--port',
      String(strict.mx.port),
      '--from',
      'someone@sender.example',
      '--to',
      alice,
      '--quit-after',
      'EHLO',
      '--proxy-family',
      'TCP4',
      '--proxy-source',
      '192.0.2.1',
      '--proxy-source-port',
      '1',
      '--proxy-dest',
      '192.0.2.2',
      '--proxy-dest-port',
      '25',
    ]);
    expect(swaksReplies(result.transcript).some((line) => line.startsWith('220'))).toBe(false);
    const log = readFileSync(strict.logFile, 'utf8');
    expect(log).toContain('PROXY protocol: peer is not a trusted balancer, connection refused');
    expect(log).toContain('"ip":"127.0.0.1"');
  });
});
