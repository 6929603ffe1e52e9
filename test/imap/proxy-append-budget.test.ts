/**
 * Parallel APPENDs are bounded: the proxy reads an APPEND whole before encrypting it, so
 * one account may hold at most two maximum-size messages at once. A literal past that
 * budget is refused with `NO [LIMIT]` before a byte of it is read (no `+`), the sessions
 * that were admitted complete and store encrypted mail, the budget comes back when they
 * finish or when a client vanishes mid-literal, and another account is unaffected.
 * Real proxy, real embedded store, raw sockets (exact bytes matter here).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProxyHarness, type ProxyHarness } from '../helpers/proxy-harness.js';
import { openWire, type Wire } from '../helpers/proxy-wire.js';

const LIMIT = 256 * 1024;
const SIZE = 200 * 1024;

function message(label: string): Buffer {
  const head = `From: alice@example.org\r\nSubject: ${label}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head), Buffer.alloc(SIZE - head.length, 'x')]);
}

describe('APPEND memory budget per account', () => {
  let h: ProxyHarness;
  const wires: Wire[] = [];

  beforeAll(async () => {
    h = await startProxyHarness({ appendLimit: LIMIT }, 4, 'embedded');
  });
  afterAll(async () => {
    for (const wire of wires) wire.close();
    await h?.stop();
  });

  async function session(device: number): Promise<Wire> {
    const wire = await openWire(h.proxy.ports.tls!, true);
    wires.push(wire);
    await wire.waitFor(/^\* OK/m);
    wire.send(`L LOGIN ${h.user.address} ${h.user.devices[device]!.password}\r\n`);
    await wire.waitFor(/\r\nL OK|^L OK/m);
    return wire;
  }

  /** Starts an APPEND with a synchronizing literal; resolves with the proxy's first answer. */
  async function announce(wire: Wire, tag: string): Promise<string> {
    const before = wire.received().length;
    wire.send(`${tag} APPEND INBOX {${SIZE}}\r\n`);
    const answer = new RegExp(`(^\\+ |^${tag} (NO|BAD|OK))`, 'm');
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const since = wire.received().slice(before);
      if (answer.test(since)) return since;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error(`no answer to ${tag}: ${wire.received().slice(before)}`);
  }

  it('admits two maximum-size literals of one account at once and refuses the third unread', async () => {
    const [first, second, third] = [await session(0), await session(1), await session(2)];
    expect(await announce(first, 'A1')).toMatch(/^\+ /m);
    expect(await announce(second, 'A2')).toMatch(/^\+ /m);
    const refused = await announce(third, 'A3');
    expect(refused).toMatch(/^A3 NO \[LIMIT\] /m);
    expect(refused).not.toMatch(/^\+ /m);

    // The admitted ones finish and are stored encrypted; then there is room again.
    first.send(Buffer.concat([message('first'), Buffer.from('\r\n')]));
    second.send(Buffer.concat([message('second'), Buffer.from('\r\n')]));
    await first.waitFor(/^A1 OK/m, 30_000);
    await second.waitFor(/^A2 OK/m, 30_000);
    expect(await announce(third, 'A4')).toMatch(/^\+ /m);
    third.send(Buffer.concat([message('third'), Buffer.from('\r\n')]));
    await third.waitFor(/^A4 OK/m, 30_000);

    third.send('F1 SELECT INBOX\r\nF2 FETCH 1:* (BODY.PEEK[HEADER.FIELDS (CONTENT-TYPE)])\r\n');
    const listing = await third.waitFor(/^F2 OK/m);
    const types = listing.match(/application\/(x-)?pkcs7-mime/gi) ?? [];
    expect(types.length).toBeGreaterThanOrEqual(3);
  });

  it('gives the budget back when a client vanishes mid-literal', async () => {
    const [a, b] = [await session(0), await session(1)];
    expect(await announce(a, 'B1')).toMatch(/^\+ /m);
    expect(await announce(b, 'B2')).toMatch(/^\+ /m);
    a.send(message('cut off').subarray(0, SIZE / 2));
    a.close();
    b.close();
    await Promise.all([a.closed(), b.closed()]);
    const c = await session(2);
    const d = await session(3);
    // Both budgets were returned: two new literals fit again.
    await expect
      .poll(async () => /^\+ /m.test(await announce(c, `C${Date.now()}`)), { timeout: 10_000 })
      .toBe(true);
    expect(await announce(d, 'D1')).toMatch(/^\+ /m);
  });
});
