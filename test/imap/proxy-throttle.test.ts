/**
 * Login throttling as the key store sees accounts (docs/threat-model.md, Limits): name
 * variants the store treats as one account (case, surrounding spaces, tab, no-break space)
 * share one backoff counter, and login checks from one IP run at most
 * `maxConcurrentPerIp` at a time.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoginThrottle } from '../../src/imap/throttle.js';
import { openWire, type Wire } from '../helpers/proxy-wire.js';
import { startKeyStoreWorld, type KeyStoreWorld } from '../helpers/proxy-keystore-world.js';

describe('login throttle keyed on the key store account', () => {
  let world: KeyStoreWorld;
  const wires: Wire[] = [];

  beforeAll(async () => {
    // One failure and the account's next attempt waits ten minutes: longer than the
    // login time, so a held attempt shows as `BYE Login timeout` instead of OK.
    world = await startKeyStoreWorld('sqlite', {
      throttle: { freeFailures: 1, baseDelayMs: 600_000 },
      loginTimeoutMs: 2_000,
    });
  });
  afterAll(async () => {
    for (const wire of wires) wire.close();
    await world?.stop();
  });

  /** A login with the name as a LITERAL+ (any bytes), from 127.0.0.2 over TLS. */
  async function attempt(name: string, password: string): Promise<string> {
    const w = await openWire(world.proxy.ports.tls!, true, '127.0.0.2');
    wires.push(w);
    await w.waitFor(/^\* OK .*\r\n/);
    const bytes = Buffer.from(name, 'utf8');
    w.send(Buffer.concat([Buffer.from(`a LOGIN {${bytes.length}+}\r\n`), bytes]));
    w.send(` "${password}"\r\n`);
    return w.waitFor(/\r\na (OK|NO)[^\r\n]*\r\n|\* BYE [^\r\n]*\r\n/);
  }

  it('holds every spelling of an account after its failures, not other accounts', async () => {
    const address = world.user.address;
    const password = world.user.devices[0]!.password;
    // One failure for the account from another IP (loopback, plaintext allowed).
    const first = await openWire(world.proxy.ports.starttls!);
    wires.push(first);
    await first.waitFor(/^\* OK .*\r\n/);
    first.send(`f LOGIN ${address} wrong-password\r\n`);
    expect(await first.waitFor(/\r\nf NO [^\r\n]*\r\n/)).toMatch(/AUTHENTICATIONFAILED/);
    for (const variant of [
      ` ${address}`,
      `${address}\t`,
      `${address}\u00a0`,
      address.toUpperCase(),
    ]) {
      const reply = await attempt(variant, password);
      expect(reply, JSON.stringify(variant)).toMatch(/\* BYE Login timeout\r\n$/);
      expect(reply, JSON.stringify(variant)).not.toMatch(/\r\na OK/);
    }
    // The held attempts were never checked, so this IP has no failures: another account
    // is answered at once (the holding above was the account's, not the address's).
    expect(await attempt(`other-${address}`, password)).toMatch(
      /\r\na NO \[AUTHENTICATIONFAILED\]/,
    );
  });
});

describe('login checks in progress per IP', () => {
  it('runs at most maxConcurrentPerIp at once from one IP; others queue, other IPs do not', async () => {
    const throttle = new LoginThrottle({ maxConcurrentPerIp: 2 });
    const first = await throttle.acquire('192.0.2.1');
    const second = await throttle.acquire('192.0.2.1');
    let third: (() => void) | null = null;
    const queued = throttle.acquire('192.0.2.1').then((release) => (third = release));
    const elsewhere = await throttle.acquire('198.51.100.7');
    await new Promise((resolve) => setImmediate(resolve));
    expect(third).toBeNull();
    expect(throttle.inProgress('192.0.2.1')).toBe(2);
    first();
    first(); // releasing twice frees one slot only
    await queued;
    expect(third).not.toBeNull();
    expect(throttle.inProgress('192.0.2.1')).toBe(2);
    second();
    third!();
    elsewhere();
    expect(throttle.inProgress('192.0.2.1')).toBe(0);
    expect(throttle.inProgress('198.51.100.7')).toBe(0);
  });
});
