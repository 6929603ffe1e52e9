/**
 * Failing for good: a 5xx bounces at once and an expired job bounces after bounceAfter,
 * each with an RFC 3464 report delivered (by the queue itself, from the null sender) to
 * the return path on the test server; a null-sender job that fails is dropped.
 */
import { simpleParser } from 'mailparser';
import { afterEach, describe, expect, it } from 'vitest';
import {
  RemoteMx,
  type ReceivedMail,
  openTestQueue,
  testMessage,
  waitUntil,
} from '../helpers/outbound-remote.js';
import { tempDir } from '../helpers/tmp.js';

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

/** remote.test refuses nobody@ (550) and slow@ (451); home.test (the return paths) takes everything. */
async function world(section: Record<string, unknown> = {}) {
  const remote = await RemoteMx.start({
    onRcpt: (to) =>
      to === 'nobody@remote.test'
        ? [550, '5.1.1 No such user here']
        : to === 'slow@remote.test'
          ? [451, '4.2.1 Mailbox busy, try later']
          : undefined,
  });
  cleanup.push(() => remote.close());
  const dir = tempDir('recrypt-outbound-bounce-');
  cleanup.push(dir.remove);
  const routes = {
    'remote.test': `127.0.0.1:${remote.port}`,
    'home.test': `127.0.0.1:${remote.port}`,
  };
  const opened = await openTestQueue(dir.path, { routes, retryInitial: '20ms', ...section });
  cleanup.push(() => opened.queue.close());
  opened.queue.start();
  return { remote, ...opened };
}

async function parseReport(mail: ReceivedMail) {
  const parsed = await simpleParser(mail.bytes);
  const contentType = parsed.headers.get('content-type') as {
    value: string;
    params: Record<string, string>;
  };
  return { parsed, contentType, raw: mail.bytes.toString('utf8') };
}

describe('outbound bounces', () => {
  it('a 5xx bounces at once: a DSN to the return path from the null sender, headers but no body', async () => {
    const { remote, queue, count, logs } = await world();
    const original = testMessage('Post to the list', 'SECRET-BODY-5XX');
    await queue.enqueue([
      {
        mailFrom: 'owner@home.test',
        to: 'nobody@remote.test',
        message: original,
        origin: { kind: 'list-post', list: 'team@home.test' },
      },
    ]);
    await waitUntil(() => remote.to('owner@home.test').length === 1, 'the DSN arrives');
    const [dsn] = remote.to('owner@home.test') as [ReceivedMail];
    expect(dsn.mailFrom).toBe('');
    const { parsed, contentType, raw } = await parseReport(dsn);
    expect(contentType.value).toBe('multipart/report');
    expect(contentType.params['report-type']).toBe('delivery-status');
    expect(parsed.to).toMatchObject({ value: [{ address: 'owner@home.test' }] });
    expect(parsed.headers.get('auto-submitted')).toBe('auto-replied');
    expect(parsed.text).toContain('nobody@remote.test');
    expect(parsed.text).toContain('550 5.1.1 No such user here');
    expect(parsed.text).toContain('list=team@home.test');
    expect(raw).toMatch(/^Content-Type: message\/delivery-status\r$/m);
    expect(raw).toContain('Final-Recipient: rfc822; nobody@remote.test\r\n');
    expect(raw).toContain('Action: failed\r\n');
    expect(raw).toContain('Status: 5.1.1\r\n');
    expect(raw).toContain('Diagnostic-Code: smtp; 550 5.1.1 No such user here\r\n');
    expect(raw).toContain('Reporting-MTA: dns; gw.test\r\n');
    const headers = parsed.attachments.find((part) => part.contentType === 'text/rfc822-headers');
    expect(headers?.content.toString()).toContain('Subject: Post to the list\r\n');
    expect(headers?.content.toString()).toContain('Message-ID: <Posttothelist@home.test>');
    expect(raw).not.toContain('SECRET-BODY-5XX');
    expect(remote.to('nobody@remote.test')).toEqual([]);
    await waitUntil(async () => (await queue.size()) === 0, 'both jobs done');
    expect(await count('bounced')).toBe(1);
    expect(await count('sent')).toBe(1);
    expect(await count('deferred')).toBe(0);
    expect(logs.join('\n')).not.toContain('SECRET-BODY-5XX');
  });

  it('a job still failing after bounceAfter bounces with the last reply', async () => {
    const { remote, queue, count } = await world({ bounceAfter: '300ms' });
    await queue.enqueue([
      {
        mailFrom: 'poster@home.test',
        to: 'slow@remote.test',
        message: testMessage('Slow one', 'SECRET-BODY-EXP'),
      },
    ]);
    await waitUntil(() => remote.to('poster@home.test').length === 1, 'the DSN arrives');
    const { parsed, raw } = await parseReport(remote.to('poster@home.test')[0]!);
    expect(parsed.text).toContain('slow@remote.test');
    expect(parsed.text).toContain('could not be delivered within 300 ms');
    expect(raw).toContain('Final-Recipient: rfc822; slow@remote.test\r\n');
    expect(raw).toContain('Action: failed\r\n');
    expect(raw).toContain('Status: 4.2.1\r\n');
    expect(raw).toContain('Diagnostic-Code: smtp; 451 4.2.1 Mailbox busy, try later\r\n');
    expect(raw).not.toContain('SECRET-BODY-EXP');
    await waitUntil(async () => (await queue.size()) === 0, 'both jobs done');
    expect(await count('bounced')).toBe(1);
  });

  it('a null-sender job that fails is dropped, with no DSN', async () => {
    const { remote, queue, count, logs } = await world();
    await queue.enqueue([
      { mailFrom: '', to: 'nobody@remote.test', message: testMessage('A bounce', 'G1') },
    ]);
    await waitUntil(async () => (await count('dropped')) === 1, 'the job is dropped');
    expect(await queue.size()).toBe(0);
    expect(
      logs.some(
        (line) =>
          line.includes('null sender failed; dropped') && line.includes('nobody@remote.test'),
      ),
    ).toBe(true);
    // Nothing was queued in its place (size 0 above); the remote only ever sees a later job.
    await queue.enqueue([
      { mailFrom: '', to: 'ok@remote.test', message: testMessage('After', 'G2') },
    ]);
    await waitUntil(async () => (await queue.size()) === 0, 'the later job is sent');
    expect(remote.received.map((mail) => mail.to)).toEqual([['ok@remote.test']]);
    expect(await count('bounced')).toBe(0);
  });

  it('refuses malformed input before writing anything', async () => {
    const { queue } = await world();
    const message = testMessage('x', 'y');
    await expect(
      queue.enqueue([{ mailFrom: 'a@home.test', to: 'two@a.test, three@b.test', message }]),
    ).rejects.toThrow(TypeError);
    await expect(
      queue.enqueue([{ mailFrom: 'a@home.test\r\nRCPT TO:<x@y>', to: 'm@remote.test', message }]),
    ).rejects.toThrow(/mailFrom/);
    await expect(
      queue.enqueue([{ mailFrom: '', to: 'm@remote.test', message: new Uint8Array() }]),
    ).rejects.toThrow(/non-empty/);
    await expect(
      queue.prepare([
        { mailFrom: '', to: 'm@remote.test', message, origin: { kind: 'x\r\nBcc: y' } },
      ]),
    ).rejects.toThrow(/origin/);
    expect(await queue.size()).toBe(0);
  });
});
