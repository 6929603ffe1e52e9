/**
 * Two archive sessions of one member's device opened at the same moment, then a list
 * rotation through the key store and a post to the new list group: both open sessions
 * must learn the new composed key from the `list-changed` notification (src/imap/README.md,
 * docs/lists.md) and recrypt the new post for the device. Concurrent logins of one device
 * must share the directory's live keys, so no session keeps a snapshot that no
 * notification refreshes. The Redis key store (its notifications travel by pub/sub, so
 * they come while other reads are in flight, as between gateways sharing one key store),
 * the embedded store, the real proxy, the raw wire, real `openssl cms -decrypt`. Whether
 * the two logins interleave depends on timing here; the directory-level test
 * (test/imap/directory-concurrent-keys.test.ts) makes each interleaving certain.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  LIST,
  rotateListAndPost,
  startArchiveWorld,
  type ArchiveWorld,
} from '../helpers/lists-archive.js';
import { fetchBody } from '../helpers/lists-proxy.js';
import type { ListDevice } from '../helpers/lists-world.js';
import { decryptWith, encryptToGroup } from '../helpers/proxy-pki.js';
import { openWire, type Wire } from '../helpers/proxy-wire.js';

const fixtures = fileURLToPath(new URL('../fixtures/lists/', import.meta.url));
const POST = readFileSync(join(fixtures, 'post.eml'));

describe('archive sessions opened at once, then a rotation (Redis key store)', () => {
  let world: ArchiveWorld;
  const wires: Wire[] = [];

  /** An archive login and SELECT; both commands are sent before any reply is read. */
  async function archiveSession(member: string, password: string): Promise<Wire> {
    const wire = await openWire(world.plainPort);
    wires.push(wire);
    await wire.waitFor(/^\* OK .*\r\n/);
    wire.send(`A LOGIN "${LIST}*${member}" "${password}"\r\n`);
    const login = await wire.waitFor(/(?:^|\n)A (?:OK|NO|BAD)[^\r\n]*\r\n/);
    expect(login).toMatch(/\nA OK /);
    wire.send('S SELECT INBOX\r\n');
    await wire.waitFor(/\nS OK[^\r\n]*\r\n/);
    return wire;
  }

  /** Opens new archive sessions until one reads message 2 as `plain` (10 s at most). */
  async function untilReadable(member: string, device: ListDevice, plain: Buffer): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const wire = await archiveSession(member, device.password);
      const body = await fetchBody(wire, 2);
      wire.close();
      if (
        await decryptWith(body, device).then(
          (p) => p.equals(plain),
          () => false,
        )
      )
        return;
      if (Date.now() > deadline) throw new Error('no new session reads the post');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  beforeAll(async () => {
    world = await startArchiveWorld('embedded', 'redis');
    const post = await encryptToGroup(POST, world.group, 'list post');
    await world.deliver(post, [LIST]);
  }, 60_000);

  afterAll(async () => {
    for (const wire of wires) wire.close();
    await world?.stop();
  });

  it('both sessions of the device read the post made after the rotation, and the one before', async () => {
    // No session of this device yet: the two logins race to load its keys.
    const device = world.alice.devices[0]!;
    const sessions = await Promise.all([
      archiveSession(world.alice.address, device.password),
      archiveSession(world.alice.address, device.password),
    ]);
    for (const wire of sessions) {
      expect((await decryptWith(await fetchBody(wire, 1), device)).equals(POST)).toBe(true);
    }

    const second = await rotateListAndPost(world, 'g2', POST);
    // The notification reaches the directory asynchronously (Redis: by pub/sub). A new
    // session, with its own plan cache, reads the post once the directory's live keys
    // hold the new group: from then on the open sessions must too.
    await untilReadable(world.alice.address, device, second);

    for (const [i, wire] of sessions.entries()) {
      wire.send('N NOOP\r\n');
      await wire.waitFor(/\nN OK[^\r\n]*\r\n/);
      const body = await fetchBody(wire, 2);
      const read = await decryptWith(body, device).then(
        (plain) => plain.equals(second),
        () => false,
      );
      expect(read, `session ${i}`).toBe(true);
      expect((await decryptWith(await fetchBody(wire, 1), device)).equals(POST)).toBe(true);
    }
  });
});
