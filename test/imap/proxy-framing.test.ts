/**
 * The two framing attacks of the security review, on the real wire through the real
 * proxy, against the embedded store and Dovecot (docs/threat-model.md, "Limits"):
 *  - a line of exactly 65,536 bytes plus a short tail ending in a `{N+}` literal whose
 *    "data" is write commands;
 *  - IDLE, whose one DONE line announces a `{N+}` literal whose "data" is write commands.
 * In a list archive session (`<list>*<member>`) nothing may change the archive; in an
 * ordinary session nothing may be APPENDed in plaintext. Also: an over-long line is
 * answered BAD and the session goes on where the stream can be resynchronised.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  LIST,
  startArchiveWorld,
  storedMailboxes,
  storedMessages,
  type ArchiveWorld,
} from '../helpers/lists-archive.js';
import { encryptToGroup } from '../helpers/proxy-pki.js';
import { openWire, type Wire } from '../helpers/proxy-wire.js';

const SECRET = 'PLAINTEXT-MARKER-7f3a';
const PLAIN = `Subject: framing\r\n\r\n${SECRET}\r\n`;

/** Write commands, as bytes a client hides where the proxy might read a literal. */
function payload(tags: string): string {
  return (
    `${tags}0 SELECT INBOX\r\n` +
    `${tags}1 STORE 1 +FLAGS (\\Deleted)\r\n` +
    `${tags}2 EXPUNGE\r\n` +
    `${tags}3 APPEND INBOX {${PLAIN.length}+}\r\n${PLAIN}\r\n`
  );
}

/** A line of exactly 65,536 bytes, then a short tail announcing the payload as LITERAL+. */
function longLineAttack(tags: string): string {
  const body = payload(tags);
  const line = `L1 NOOP ${'x'.repeat(65536 - 8)}`;
  expect(line.length).toBe(65536);
  return `${line} {${body.length}+}\r\n${body}`;
}

/** IDLE; its one line announces the payload as LITERAL+; then DONE for good measure. */
function idleAttack(tags: string): string {
  const body = payload(tags);
  return `I1 IDLE\r\nI2 NOOP {${body.length}+}\r\n${body}DONE\r\n`;
}

describe.each([
  ['embedded', 'sqlite'],
  ['dovecot', 'redis'],
] as const)('framing attacks through the proxy (%s store)', (kind, keyStoreKind) => {
  let world: ArchiveWorld;
  const wires: Wire[] = [];

  async function session(login: string): Promise<Wire> {
    const wire = await openWire(world.plainPort);
    wires.push(wire);
    await wire.waitFor(/^\* OK .*\r\n/);
    wire.send(`A ${login}\r\nS SELECT INBOX\r\n`);
    await wire.waitFor(/\nS (?:OK|NO|BAD)[^\r\n]*\r\n/);
    return wire;
  }

  /** Sends `attack`, then a NOOP; resolves once the NOOP is answered or the session ends. */
  async function attack(wire: Wire, text: string): Promise<string> {
    const mark = wire.received().length;
    wire.send(text);
    wire.send('Z NOOP\r\n');
    // A BYE (the proxy's answer where the stream cannot be resynchronised) ends the wait too.
    await Promise.race([
      wire.waitFor(/\nZ OK[^\r\n]*\r\n/, 20_000).catch(() => undefined),
      wire.closed(),
    ]);
    // Whatever the store would do with the bytes, it has done once Z (after them) is answered.
    return wire.received().slice(mark);
  }

  beforeAll(async () => {
    world = await startArchiveWorld(kind, keyStoreKind);
    const post = await encryptToGroup(Buffer.from(PLAIN), world.group, 'list post');
    await world.deliver(post, [LIST, world.alice.address]);
  }, 60_000);

  afterAll(async () => {
    for (const wire of wires) wire.close();
    await world?.stop();
  });

  for (const [name, build] of [
    ['a 65,536-byte line with a LITERAL+ tail', longLineAttack],
    ['IDLE whose line announces a LITERAL+', idleAttack],
  ] as const) {
    it(`${name}: the archive stays read-only`, async () => {
      const before = await storedMessages(world, LIST);
      const mailboxes = await storedMailboxes(world, LIST);
      const bob = world.bob.devices[0]!;
      const wire = await session(`LOGIN "${LIST}*${world.bob.address}" "${bob.password}"`);
      const text = await attack(wire, build('W'));
      wire.close();
      expect(text).not.toMatch(/\nW[123] OK/);
      expect(await storedMessages(world, LIST)).toEqual(before);
      expect(await storedMailboxes(world, LIST)).toEqual(mailboxes);
    });

    it(`${name}: nothing is APPENDed in plaintext`, async () => {
      const alice = world.alice.devices[0]!;
      const wire = await session(`LOGIN "${world.alice.address}" "${alice.password}"`);
      await attack(wire, build('P'));
      wire.close();
      // Its own STORE and EXPUNGE are the owner's to send; an APPEND is stored encrypted.
      const after = await storedMessages(world, world.alice.address);
      for (const message of after) expect(message.body.toString('latin1')).not.toContain(SECRET);
    });
  }

  it('over-long lines: BAD [TOOBIG] and the session goes on; a LITERAL+ tail ends it with BYE', async () => {
    const alice = world.alice.devices[0]!;
    const wire = await session(`LOGIN "${world.alice.address}" "${alice.password}"`);
    for (const length of [65535, 65536, 65537]) {
      const mark = wire.received().length;
      wire.send(`B NOOP ${'y'.repeat(length - 7)}\r\nC${length} NOOP\r\n`);
      const text = (await wire.waitFor(new RegExp(`\nC${length} OK[^\r\n]*\r\n`))).slice(mark);
      expect(text, String(length)).toMatch(/^B BAD \[TOOBIG\]/m);
    }
    wire.send(`D NOOP ${'y'.repeat(70000)} {5+}\r\nE NOOP\r\n`);
    const bye = await wire.waitFor(/\* BYE [^\r\n]*\r\n/);
    expect(bye).toMatch(/\* BYE Command line too long/);
    await wire.closed();
    expect(wire.received()).not.toMatch(/\nE OK/);
  });
});
