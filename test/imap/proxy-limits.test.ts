/**
 * The proxy's connection caps and login timeout on real sockets (docs/threat-model.md,
 * Limits): a connection over a cap gets `* BYE` and is closed, on the STARTTLS port and
 * over implicit TLS; a login over the per-account-and-IP cap gets `NO [LIMIT]`; a client
 * that keeps trickling bytes is still told BYE when the login time is up. 127.0.0.2 is a
 * second client address (all of 127/8 is loopback on Linux).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startProxyHarness, type ProxyHarness } from '../helpers/proxy-harness.js';
import { openWire, type Wire } from '../helpers/proxy-wire.js';

const GREETING = /^\* OK .*\r\n/;

describe('IMAP proxy connection limits', () => {
  let h: ProxyHarness;
  const wires: Wire[] = [];

  beforeAll(async () => {
    h = await startProxyHarness(
      {
        limits: { maxConnections: 5, maxConnectionsPerIp: 3, maxSessionsPerUserIp: 2 },
        loginTimeoutMs: 1_500,
      },
      1,
      'embedded',
    );
  });
  afterEach(async () => {
    for (const wire of wires.splice(0)) wire.close();
    await until(() => h.proxy.sessionCount() === 0);
  });
  afterAll(async () => {
    await h?.stop();
  });

  async function wire(from?: string, tls = false): Promise<Wire> {
    const port = tls ? h.proxy.ports.tls! : h.proxy.ports.starttls!;
    const w = await openWire(port, tls, from);
    wires.push(w);
    await w.waitFor(/\r\n/);
    return w;
  }

  it('BYE past the per-IP cap and past the total, on both ports; a freed slot is reused', async () => {
    const first = [await wire(), await wire(), await wire()];
    for (const w of first) expect(w.received()).toMatch(GREETING);
    const overIp = await wire();
    expect(overIp.received()).toBe(
      '* BYE [UNAVAILABLE] Too many connections from your address\r\n',
    );
    await overIp.closed();
    const overIpTls = await wire(undefined, true);
    expect(overIpTls.received()).toMatch(/^\* BYE \[UNAVAILABLE\] Too many connections from/);
    await overIpTls.closed();

    // Another address still gets in, until the total is reached.
    const other = [await wire('127.0.0.2'), await wire('127.0.0.2', true)];
    for (const w of other) expect(w.received()).toMatch(GREETING);
    const full = await wire('127.0.0.2');
    expect(full.received()).toBe('* BYE [UNAVAILABLE] Too many connections\r\n');
    await full.closed();

    // The refused ones were not counted; a closed one frees its slot.
    first[0]!.close();
    await until(() => h.proxy.sessionCount() === 4);
    const again = await wire();
    expect(again.received()).toMatch(GREETING);
    again.send('n NOOP\r\n');
    expect(await again.waitFor(/\r\nn OK.*\r\n/)).toMatch(/n OK/);
  });

  it('NO [LIMIT] and BYE for a login past the sessions of one account from one IP', async () => {
    const password = h.user.devices[0]!.password;
    const login = async (w: Wire, tag: string): Promise<string> => {
      w.send(`${tag} LOGIN ${h.user.address} ${password}\r\n`);
      return w.waitFor(new RegExp(`\\r\\n${tag} (OK|NO)[^\\r\\n]*\\r\\n`));
    };
    const a = await wire();
    const b = await wire();
    expect(await login(a, 'a')).toMatch(/\r\na OK/);
    expect(await login(b, 'b')).toMatch(/\r\nb OK/);
    const c = await wire();
    const refused = await login(c, 'c');
    expect(refused).toMatch(/\r\nc NO \[LIMIT\] [^\r\n]*\r\n/);
    await c.closed();
    expect(c.received()).toMatch(/\* BYE /);
    // From another address the account may still log in; here a slot comes free on logout.
    const d = await wire('127.0.0.2', true);
    expect(await login(d, 'd')).toMatch(/\r\nd OK/);
    a.send('z LOGOUT\r\n');
    await a.closed();
    await until(() => h.proxy.loggedInCount() === 2);
    const e = await wire();
    expect(await login(e, 'e')).toMatch(/\r\ne OK/);
  });

  it('ends a client that trickles bytes before login when the login time is up', async () => {
    const w = await wire();
    let sent = 0;
    const trickle = setInterval(() => {
      // Complete commands and stray bytes alike: neither extends the login time.
      w.send(sent++ % 2 === 0 ? `t${sent} NOOP\r\n` : 'x');
    }, 200);
    try {
      await w.waitFor(/\* BYE Login timeout\r\n/, 10_000);
      await w.closed();
    } finally {
      clearInterval(trickle);
    }
    expect(w.received()).toMatch(/t1 OK/);
  });
});

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !condition(); i++)
    await new Promise((resolve) => setTimeout(resolve, 25));
  if (!condition()) throw new Error('condition not met');
}
