/**
 * The relay under stress, against a real Dovecot: partial fetches that need the prefix
 * from upstream, a planted bad point, a 20 MB message, refused commands, client garbage,
 * a client vanishing mid-literal, and the store going away mid-response.
 */
import { Writable } from 'node:stream';
import { ImapFlow } from 'imapflow';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createImapProxyMetrics, startImapProxy } from '../../src/imap/index.js';
import { startCuttableLink } from '../helpers/proxy-cut.js';
import { STORE_KINDS, startProxyHarness, type ProxyHarness } from '../helpers/proxy-harness.js';
import { decryptWith, encryptToGroup } from '../helpers/proxy-pki.js';
import { openWire, type Wire } from '../helpers/proxy-wire.js';

describe.each(STORE_KINDS)('IMAP proxy relay (%s upstream)', (kind) => {
  let h: ProxyHarness;
  const logs: string[] = [];
  const registry = new Registry();
  const wires: Wire[] = [];
  const plain = Buffer.from(
    'From: carol@example.org\r\nSubject: relay\r\n\r\n' + 'line of text\r\n'.repeat(300),
  );
  const big = Buffer.alloc(20 * 1024 * 1024);
  let planted: Buffer;

  beforeAll(async () => {
    h = await startProxyHarness(
      {
        logger: pino(
          { level: 'info' },
          new Writable({ write: (chunk: Buffer, _e, cb) => (logs.push(chunk.toString()), cb()) }),
        ),
        metrics: createImapProxyMetrics(registry),
      },
      2,
      kind,
    );
    await h.deliver(await encryptToGroup(plain, h.user.group, 'uid 1')); // UID 1
    // UID 2: the originator point's last byte flipped: off the curve.
    const good = await encryptToGroup(plain, h.user.group, 'uid 2');
    const split = good.indexOf('\r\n\r\n') + 4;
    const der = Buffer.from(good.subarray(split).toString('latin1'), 'base64');
    const at = der.indexOf(Buffer.from([0x03, 0x42, 0x00, 0x04])) + 3;
    der[at + 64] = der[at + 64]! ^ 1;
    planted = Buffer.concat([
      good.subarray(0, split),
      Buffer.from(
        `${der
          .toString('base64')
          .match(/.{1,76}/g)!
          .join('\r\n')}\r\n`,
      ),
    ]);
    await h.deliver(planted);
    for (let i = 0; i < big.length; i++) big[i] = 33 + (i % 90);
    await h.deliver(await encryptToGroup(big, h.user.group, 'uid 3')); // UID 3
  });
  // Dovecot allows 10 connections per user and IP (mail_max_userip_connections).
  afterEach(() => {
    for (const wire of wires.splice(0)) wire.close();
  });
  afterAll(async () => {
    for (const wire of wires) wire.close();
    await h?.stop();
  });

  async function session(deviceIndex = 0): Promise<Wire> {
    const w = await openWire(h.proxy.ports.starttls!);
    wires.push(w);
    await w.waitFor(/^\* OK .*\r\n/);
    w.send(
      `L LOGIN ${h.user.address} ${h.user.devices[deviceIndex]!.password}\r\nS SELECT INBOX\r\n`,
    );
    await w.waitFor(/\nS OK .*\r\n/);
    return w;
  }

  /** The literal of the first FETCH response after `marker` in the session's text. */
  function literalAfter(text: string, marker: string): Buffer {
    const from = text.indexOf(marker);
    const match = /\{(\d+)\}\r\n/.exec(text.slice(from));
    const start = from + match!.index + match![0].length;
    return Buffer.from(text.slice(start, start + Number(match![1])), 'latin1');
  }

  it('a partial fetch into the CMS prefix, first in its session, is recrypted from a prefix fetched upstream', async () => {
    const w = await session();
    w.send('P1 UID FETCH 1 (BODY.PEEK[]<300.3000>)\r\n');
    await w.waitFor(/\nP1 OK .*\r\n/);
    w.send('P2 UID FETCH 1 (BODY.PEEK[])\r\n');
    const text = await w.waitFor(/\nP2 OK .*\r\n/);
    const partial = literalAfter(text, '* 1 FETCH');
    const whole = literalAfter(text.slice(text.indexOf('P1 OK')), '* 1 FETCH');
    expect(partial.length).toBe(3000);
    expect(partial.equals(whole.subarray(300, 3300))).toBe(true);
    expect((await decryptWith(whole, h.user.devices[0]!)).equals(plain)).toBe(true);
    // The recrypted bytes lie inside the partial: it differs from what the store holds.
    const direct = await openWire(h.upstream.imapPort);
    wires.push(direct);
    const credential = Buffer.from(
      `${h.user.address}\0${h.upstream.masterUser}\0${h.upstream.masterPassword}`,
    ).toString('base64');
    direct.send(
      `D1 AUTHENTICATE PLAIN ${credential}\r\nD2 EXAMINE INBOX\r\nD3 UID FETCH 1 (BODY.PEEK[]<300.3000>)\r\n`,
    );
    const stored = literalAfter(await direct.waitFor(/\nD3 OK .*\r\n/), '* 1 FETCH');
    expect(stored.length).toBe(3000);
    expect(stored.equals(partial)).toBe(false);
  });

  it('a planted off-curve originator point passes unchanged and is logged', async () => {
    const w = await session();
    w.send('B1 UID FETCH 2 (BODY.PEEK[TEXT])\r\n');
    const text = await w.waitFor(/\nB1 OK .*\r\n/);
    const body = literalAfter(text, '* 2 FETCH');
    expect(body.equals(planted.subarray(planted.indexOf('\r\n\r\n') + 4))).toBe(true);
    expect(logs.join('')).toMatch(/originator point not on P-256/);
    expect(await registry.getSingleMetricAsString('imap_proxy_bodies_total')).toMatch(
      /result="unchanged",reason="invalid-point"} 1/,
    );
  });

  it('a 20 MB message streams through and decrypts', async () => {
    const client = new ImapFlow({
      host: '127.0.0.1',
      port: h.proxy.ports.tls!,
      secure: true,
      tls: { rejectUnauthorized: false },
      auth: { user: h.user.address, pass: h.user.devices[1]!.password },
      logger: false,
    });
    await client.connect();
    try {
      await client.mailboxOpen('INBOX');
      const { content } = await client.download('3', undefined, { uid: true });
      const parts: Buffer[] = [];
      for await (const chunk of content!) parts.push(chunk as Buffer);
      expect((await decryptWith(Buffer.concat(parts), h.user.devices[1]!)).equals(big)).toBe(true);
    } finally {
      await client.logout();
    }
  }, 120_000);

  it('a client that stops reading holds the upstream back (backpressure), then gets every byte', async () => {
    const sent = async (): Promise<number> => {
      const text = await registry.getSingleMetricAsString('imap_proxy_bytes_total');
      return Number(/direction="to_client"} (\d+)/.exec(text)?.[1] ?? 0);
    };
    const w = await session(1);
    const before = await sent();
    w.socket.pause();
    w.send('F UID FETCH 3 (BODY.PEEK[])\r\n');
    // Wait until the proxy stops writing: the socket buffers are full, nothing is queued beyond them.
    // (Not before it has started: on a loaded machine the first bytes can take longer than one poll.)
    let last = -1;
    for (let now = await sent(); now !== last || now === before; now = await sent()) {
      last = now;
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    const relayed = last - before;
    expect(relayed).toBeGreaterThan(0);
    expect(relayed).toBeLessThan(big.length / 2);
    w.socket.resume();
    // 20 MiB through the recrypting proxy to a client that read nothing for a while; the
    // point is that every byte comes.
    const text = await w.waitFor(/\nF OK [^\r\n]*\r\n/, 150_000);
    const body = Buffer.from(
      text.slice(text.indexOf('}\r\n', text.indexOf('* 3 FETCH')) + 3),
      'latin1',
    );
    expect(body.length).toBeGreaterThan(big.length);
  }, 200_000);

  it('refuses COMPRESS and re-authentication, relays client garbage to the store, and keeps going', async () => {
    const w = await session();
    w.send('C1 COMPRESS DEFLATE\r\nC2 AUTHENTICATE PLAIN {5+}\r\nxxxxx\r\n');
    await w.waitFor(/\nC2 BAD .*\r\n/);
    expect(w.received()).toMatch(/\nC1 BAD /);
    w.send(
      Buffer.concat([
        Buffer.from([0, 1, 2, 0xff, 0xfe]),
        Buffer.from('\r\n}{)(\r\n* 1 FETCH\r\nG1 FETCH 1 (BODY[\r\n'),
      ]),
    );
    w.send('N1 NOOP\r\n');
    expect(await w.waitFor(/\nN1 .*\r\n/)).toMatch(/\nN1 OK/);
    expect(await registry.getSingleMetricAsString('imap_proxy_bytes_total')).toMatch(
      /direction="to_client"} [1-9]/,
    );
  });

  it('synchronizing literals in relayed commands wait for the store, refused ones resume cleanly', async () => {
    const w = await openWire(h.proxy.ports.starttls!);
    wires.push(w);
    await w.waitFor(/^\* OK .*\r\n/);
    w.send(`L LOGIN ${h.user.address} ${h.user.devices[0]!.password}\r\n`);
    await w.waitFor(/\nL OK .*\r\n/);
    // A mailbox name sent as a literal: the selection is tracked through it.
    w.send('S SELECT {5}\r\n');
    await w.waitFor(/\n\+ .*\r\n/);
    w.send('INBOX\r\n');
    await w.waitFor(/\nS OK .*\r\n/);
    // A refused command with a synchronizing literal: the store answers BAD, no `+` comes.
    w.send('R LOGIN {3}\r\n');
    await w.waitFor(/\nR BAD .*\r\n/);
    expect(w.received()).not.toMatch(/\nR BAD[^\n]*\r\n[\s\S]*\n\+ /);
    // A plain FETCH (no UID): the proxy adds UID so that it can find the message's plan.
    w.send('P FETCH 1 (BODY.PEEK[]<300.3000>)\r\n');
    const text = await w.waitFor(/\nP OK .*\r\n/);
    const partial = literalAfter(text.slice(text.indexOf('\nR BAD')), '* 1 FETCH');
    const c = await session();
    c.send('W UID FETCH 1 (BODY.PEEK[])\r\n');
    const whole = literalAfter(await c.waitFor(/\nW OK .*\r\n/), '* 1 FETCH');
    expect(partial.equals(whole.subarray(300, 3300))).toBe(true);
  });

  it('a client that disconnects mid-literal leaves nothing behind and the proxy keeps serving', async () => {
    const w = await session();
    w.send('A1 APPEND INBOX {100000+}\r\n' + 'x'.repeat(5000));
    await new Promise((resolve) => setTimeout(resolve, 100));
    w.close();
    const again = await session();
    expect(again.received()).toMatch(/\* 3 EXISTS/);
    again.send('A2 APPEND INBOX {11}\r\n');
    await again.waitFor(/\+ .*\r\n/);
    again.send('Subject: x\r\n\r\n');
    expect(await again.waitFor(/\nA2 .*\r\n/)).toMatch(/\nA2 OK/);
  });

  it('the store closing mid-response ends the session with BYE', async () => {
    const link = await startCuttableLink(h.upstream.imapPort);
    const proxy = await startImapProxy({
      host: '127.0.0.1',
      starttlsPort: 0,
      tls: { key: h.tlsKey, cert: h.tlsCert },
      upstream: { host: '127.0.0.1', port: link.port, tls: false },
      master: { user: h.upstream.masterUser, password: h.upstream.masterPassword },
      directory: h.directory,
      allowPlaintextOnLoopback: true,
    });
    try {
      const w = await openWire(proxy.ports.starttls!);
      wires.push(w);
      await w.waitFor(/^\* OK .*\r\n/);
      w.send(
        `L LOGIN ${h.user.address} ${h.user.devices[0]!.password}\r\nS SELECT INBOX\r\nF1 UID FETCH 3 (BODY.PEEK[])\r\n`,
      );
      await w.waitFor(/\* 3 FETCH/);
      link.cut();
      await w.closed();
      expect(w.received().slice(-200)).toMatch(/\* BYE Mail store connection closed\r\n$/);
      expect(w.received()).not.toMatch(/\nF1 OK/);
    } finally {
      await proxy.close();
      await link.close();
    }
  });
});
