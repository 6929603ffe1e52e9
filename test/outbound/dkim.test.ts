/**
 * DKIM signing of what the queue sends (outbound.dkim): a copy from a domain with a key
 * arrives signed, and mailauth (not ours) verifies the signature against the public key
 * in a DNS TXT record served by a fixture resolver; a copy from another domain, and a
 * null-sender job, go unsigned; a key file that is not a key stops the queue at start.
 */
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { authenticate } from 'mailauth';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RemoteMx, openTestQueue, testMessage, waitUntil } from '../helpers/outbound-remote.js';
import { tempDir } from '../helpers/tmp.js';

describe('DKIM signing of outbound mail', () => {
  const dir = tempDir('outbound-dkim-');
  const keyFile = join(dir.path, 'dkim.pem');
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const record = `v=DKIM1; k=rsa; p=${publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`;
  let remote: RemoteMx;

  beforeAll(async () => {
    writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    remote = await RemoteMx.start();
  });
  afterAll(async () => {
    await remote?.close();
    dir.remove();
  });

  const verify = async (bytes: Buffer) => {
    const result = await authenticate(bytes, {
      ip: '127.0.0.1',
      helo: 'gw.test',
      sender: 'team-bounces@lists.test',
      mta: 'mx.remote.test',
      disableArc: true,
      disableBimi: true,
      resolver: async (name: string, type: string) => {
        if (type === 'TXT' && name === 's2026._domainkey.lists.test') return [[record]];
        throw Object.assign(new Error(`no ${type} for ${name}`), { code: 'ENOTFOUND' });
      },
    });
    return result.dkim.results;
  };

  it('signs copies from a domain with a key, and only those', async () => {
    const { queue } = await openTestQueue(join(dir.path, 'queue'), {
      routes: { 'remote.test': `127.0.0.1:${remote.port}` },
      dkim: { 'Lists.Test': { selector: 's2026', privateKeyFile: keyFile } },
    });
    queue.start();
    try {
      await queue.enqueue([
        {
          mailFrom: 'team-bounces@lists.test',
          to: 'ann@remote.test',
          message: testMessage('signed', 'M1'),
        },
        {
          mailFrom: 'other@elsewhere.test',
          to: 'bo@remote.test',
          message: testMessage('unsigned', 'M2'),
        },
        { mailFrom: '', to: 'cy@remote.test', message: testMessage('notice', 'M3') },
      ]);
      await waitUntil(() => remote.received.length >= 3, 'three deliveries');
    } finally {
      await queue.close();
    }
    const signed = remote.to('ann@remote.test')[0]!.bytes;
    expect(signed.toString('latin1')).toMatch(/^DKIM-Signature: .*d=lists\.test/m);
    const results = await verify(signed);
    expect(results.map((r: { status: { result: string } }) => r.status.result)).toEqual(['pass']);
    // Tampering with a signed header breaks it: the check is real.
    const tampered = Buffer.from(
      signed.toString('latin1').replace('Subject: signed', 'Subject: forged'),
      'latin1',
    );
    expect((await verify(tampered))[0]?.status.result).toBe('fail');
    for (const to of ['bo@remote.test', 'cy@remote.test'])
      expect(remote.to(to)[0]!.bytes.toString('latin1')).not.toMatch(/^DKIM-Signature:/m);
  });

  it('refuses to start with a key file that holds no key', async () => {
    const bad = join(dir.path, 'not-a-key.pem');
    writeFileSync(bad, 'hello\n');
    await expect(
      openTestQueue(join(dir.path, 'queue2'), {
        dkim: { 'lists.test': { selector: 's1', privateKeyFile: bad } },
      }),
    ).rejects.toThrow(/outbound\.dkim: cannot use .*not-a-key\.pem as a private key/);
  });
});
