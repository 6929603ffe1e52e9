/**
 * A login that races `device revoke` must not survive it (docs/threat-model.md, Limits):
 * clients log one device in over and over on real sockets while the device is revoked
 * in the key store (SQLite, and a throwaway redis-server whose notifications arrive over
 * pub/sub). Afterwards no session of the device may be open: every login that got OK,
 * however late, is told BYE and closed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openWire, type Wire } from '../helpers/proxy-wire.js';
import {
  startKeyStoreWorld,
  type KeyStoreKind,
  type KeyStoreWorld,
} from '../helpers/proxy-keystore-world.js';

const CLIENTS = 16;

describe.each<KeyStoreKind>(['sqlite', 'redis'])('revocation racing logins (%s)', (kind) => {
  let world: KeyStoreWorld;

  beforeAll(async () => {
    world = await startKeyStoreWorld(kind, {
      // The race is the subject here, not the caps: let every client through them.
      throttle: { freeFailures: 100_000, maxConcurrentPerIp: CLIENTS },
      limits: { maxSessionsPerUserIp: 10_000, maxConnectionsPerIp: 10_000 },
    });
  });
  afterAll(async () => {
    await world?.stop();
  });

  it('leaves no session of the revoked device open', async () => {
    const device = world.user.devices[0]!;
    const loggedIn: Wire[] = [];
    let stopping = false;
    let revoked = false;
    let okAfterRevoke = 0;
    const client = async (): Promise<void> => {
      while (!stopping) {
        const wire = await openWire(world.proxy.ports.starttls!);
        await wire.waitFor(/^\* OK .*\r\n/);
        wire.send(`a LOGIN ${world.user.address} ${device.password}\r\n`);
        const reply = await wire.waitFor(/\r\na (OK|NO)[^\r\n]*\r\n|\* BYE [^\r\n]*\r\n/);
        if (/\r\na OK/.test(reply)) {
          loggedIn.push(wire);
          if (revoked) okAfterRevoke++;
        } else {
          wire.close();
        }
      }
    };
    const clients = Array.from({ length: CLIENTS }, () => client());
    // Revoke once a few sessions are up and more logins are in flight.
    while (loggedIn.length < 4) await new Promise((resolve) => setTimeout(resolve, 20));
    await world.store.revokeDevice(world.user.address, world.ids[0]!);
    revoked = true;
    // Logins already in flight complete (or fail) now; new ones must fail.
    await new Promise((resolve) => setTimeout(resolve, 500));
    stopping = true;
    await Promise.all(clients);

    const alive = await openAfter(loggedIn, 5_000);
    expect({ alive, loggedIn: world.proxy.loggedInCount() }).toEqual({ alive: 0, loggedIn: 0 });
    for (const wire of loggedIn) expect(wire.received()).toMatch(/\* BYE /);
    // Not a condition of the test, a note on what it exercised.
    console.info(`${kind}: ${loggedIn.length} sessions, ${okAfterRevoke} OK after revoke returned`);
  });
});

/** How many of `wires` are still open after `ms` (each closes or the time runs out). */
async function openAfter(wires: Wire[], ms: number): Promise<number> {
  let open = wires.length;
  await Promise.race([
    Promise.all(wires.map((wire) => wire.closed().then(() => open--))),
    new Promise((resolve) => setTimeout(resolve, ms)),
  ]);
  return open;
}
