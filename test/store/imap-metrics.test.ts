import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStoreImapMetrics } from '../../src/store/imap/index.js';
import { plain, startStoreServer, Wire, type StoreServer } from '../helpers/store-imap.js';
import { sampleMessages } from '../helpers/store-messages.js';

/**
 * The embedded store's IMAP metrics: a connections gauge, and commands counted by name
 * and tagged result where dispatch turns them into replies; nothing the client typed
 * beyond a known command name becomes a label.
 */
describe('IMAP store metrics', () => {
  let s: StoreServer;
  const registry = new Registry();
  const metrics = createStoreImapMetrics(registry);
  const wires: Wire[] = [];

  beforeAll(async () => {
    s = await startStoreServer(['alice'], { metrics });
    await s.store.deliver('alice', sampleMessages()[0]!);
  });

  afterAll(async () => {
    for (const w of wires) w.close();
    await s.stop();
  });

  const commands = async (command: string, result: string) =>
    (await metrics.commands.get()).values.find(
      (v) => v.labels.command === command && v.labels.result === result,
    )?.value ?? 0;
  const connections = async () => (await metrics.connections.get()).values[0]?.value ?? 0;

  it('counts commands by name and result (OK, NO, BAD) and open connections', async () => {
    const w = await Wire.open(s.server.port);
    wires.push(w);
    expect(await connections()).toBe(1);
    expect(await w.command('a', `AUTHENTICATE PLAIN ${plain('alice')}`)).toMatch(/^a OK/m);
    expect(await w.command('b', 'SELECT INBOX')).toMatch(/^b OK/m);
    expect(await w.command('c', 'FETCH 1 (BODY.PEEK[])')).toMatch(/^c OK/m);
    expect(await w.command('d', 'SELECT "no such mailbox"')).toMatch(/^d NO/m);
    expect(await w.command('e', 'LOGIN alice secret')).toMatch(/^e BAD/m);
    expect(await w.command('f', 'XSECRET alice@example.org')).toMatch(/^f BAD/m);

    expect(await commands('AUTHENTICATE', 'OK')).toBe(1);
    expect(await commands('SELECT', 'OK')).toBe(1);
    expect(await commands('FETCH', 'OK')).toBe(1);
    expect(await commands('SELECT', 'NO')).toBe(1);
    expect(await commands('LOGIN', 'BAD')).toBe(1);
    expect(await commands('unparsed', 'BAD')).toBe(1);
    const text = await registry.metrics();
    expect(text).not.toMatch(/XSECRET|example\.org|no such mailbox/);
  });

  it('the gauge drops when a connection closes', async () => {
    const w = await Wire.open(s.server.port);
    expect(await connections()).toBe(2);
    expect(await w.command('z', 'LOGOUT')).toMatch(/^z OK/m);
    for (let i = 0; i < 100 && (await connections()) !== 1; i++)
      await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await connections()).toBe(1);
    expect(await commands('LOGOUT', 'OK')).toBe(1);
  });
});
