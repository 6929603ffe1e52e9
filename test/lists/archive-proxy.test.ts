/**
 * members open the list's archive (the list address's own store mailbox) through
 * the real proxy, as a separate login in Dovecot's master-user form — `LOGIN
 * "<list>*<member>"` or SASL PLAIN with authzid = the list — with their own device
 * password. Real stores (the embedded one and Dovecot), posts over LMTP and through the
 * real list MX, real clients (Python's imaplib, imapflow, the raw wire), real `openssl
 * cms -decrypt`: the archive reads with the
 * member's device key only, is read-only (EXAMINE, no \Seen, every write NO [NOPERM] and
 * nothing changed in the store), every failure is the same AUTHENTICATIONFAILED, and a
 * removed member's open archive session ends.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBinary } from '../helpers/binaries.js';
import {
  LIST,
  rotateListAndPost,
  startArchiveWorld,
  storedMailboxes,
  storedMessages,
  type ArchiveWorld,
} from '../helpers/lists-archive.js';
import { post } from '../helpers/lists-mx.js';
import { fetchBody } from '../helpers/lists-proxy.js';
import type { ListDevice } from '../helpers/lists-world.js';
import { decryptWith, encryptToGroup, type PemIdentity } from '../helpers/proxy-pki.js';
import { openWire, type Wire } from '../helpers/proxy-wire.js';

const run = promisify(execFile);
const fixtures = fileURLToPath(new URL('../fixtures/lists/', import.meta.url));
const POST = readFileSync(join(fixtures, 'post.eml'));
const NOPERM = 'NO [NOPERM] The list archive is read-only';
const FAILED = 'NO [AUTHENTICATIONFAILED] Authentication failed';

async function fails(message: Buffer, who: PemIdentity): Promise<boolean> {
  return decryptWith(message, who).then(
    () => false,
    () => true,
  );
}

const sasl = (authzid: string, authcid: string, password: string): string =>
  Buffer.from(`${authzid}\0${authcid}\0${password}`, 'utf8').toString('base64');

/** Every tagged reply in `text` (`OK …`, `NO …`, `BAD …`) by tag, in the order they came. */
function taggedReplies(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const match of text.matchAll(/^([A-Za-z0-9]+) ((?:OK|NO|BAD)[^\r\n]*)\r$/gm)) {
    out.set(match[1]!, match[2]!);
  }
  return out;
}

// The default deployment (embedded store, SQLite) and the grown one (Dovecot, Redis).
describe.each([
  ['embedded', 'sqlite'],
  ['dovecot', 'redis'],
] as const)('the list archive through the proxy (%s store, %s key store)', (kind, keyStoreKind) => {
  let world: ArchiveWorld;
  const wires: Wire[] = [];

  /** A fresh connection; `command` (tag A) is the login; resolves with A's tagged reply. */
  async function login(command: string): Promise<{ wire: Wire; reply: string }> {
    const wire = await openWire(world.plainPort);
    wires.push(wire);
    await wire.waitFor(/^\* OK .*\r\n/);
    wire.send(`${command}\r\n`);
    const text = await wire.waitFor(/(?:^|\n)A (?:OK|NO|BAD)[^\r\n]*\r\n/);
    return { wire, reply: taggedReplies(text).get('A')! };
  }

  async function attempt(command: string): Promise<string> {
    const { wire, reply } = await login(command);
    wire.close();
    return reply;
  }

  async function archiveSession(member: string, password: string): Promise<Wire> {
    const { wire, reply } = await login(`A LOGIN "${LIST}*${member}" "${password}"`);
    expect(reply).toMatch(/^OK /);
    wire.send('S SELECT INBOX\r\n');
    await wire.waitFor(/\nS OK[^\r\n]*\r\n/);
    return wire;
  }

  async function imaplib(
    mode: 'login' | 'plain',
    member: string,
    device: ListDevice,
  ): Promise<{ report: Record<string, unknown>; body: (uid: string) => Buffer }> {
    const out = join(world.dir, `imaplib-${mode}-${device.id}`);
    mkdirSync(out);
    const { stdout } = await run(
      requireBinary('python3'),
      [
        join(fixtures, 'imaplib-archive.py'),
        mode,
        '127.0.0.1',
        String(world.plainPort),
        LIST,
        member,
        device.password,
        out,
      ],
      { timeout: 30_000 },
    );
    return {
      report: JSON.parse(stdout) as Record<string, unknown>,
      body: (uid) => readFileSync(join(out, `${uid}.bin`)),
    };
  }

  beforeAll(async () => {
    world = await startArchiveWorld(kind, keyStoreKind);
    const post = await encryptToGroup(POST, world.group, 'list post');
    // What the MX does with a post: one ciphertext for the members' mailboxes and the archive.
    await world.deliver(post, [LIST, world.alice.address, world.bob.address]);
  }, 60_000);

  afterAll(async () => {
    for (const wire of wires) wire.close();
    await world?.stop();
  });

  it('imaplib, LOGIN "<list>*<member>": READ-ONLY, the post reads with that device only, no \\Seen, writes refused', async () => {
    const before = await storedMessages(world, LIST);
    const mailboxesBefore = await storedMailboxes(world, LIST);
    expect(before).toHaveLength(1);
    const device = world.alice.devices[0]!;
    const { report, body } = await imaplib('login', world.alice.address, device);
    expect(report).toMatchObject({ login: 'OK', select: 'read-only', uids: ['1'] });
    const fetched = body('1');
    expect(fetched.length).toBe(before[0]!.body.length);
    expect((await decryptWith(fetched, device)).equals(POST)).toBe(true);
    for (const other of [world.alice.devices[1]!, world.bob.devices[0]!, world.alice.group]) {
      expect(await fails(fetched, other)).toBe(true);
    }
    expect((report.flags as Record<string, string>)['1']).not.toMatch(/\\Seen/);
    for (const write of ['store', 'copy', 'expunge', 'append', 'create']) {
      expect(report[write], write).toEqual(['NO', NOPERM.slice(3)]);
    }
    expect(report.noop).toBe('OK');
    // The store kept every byte and flag, and no mailbox came or went.
    expect(await storedMessages(world, LIST)).toEqual(before);
    expect(await storedMailboxes(world, LIST)).toEqual(mailboxesBefore);
  });

  it('imaplib, AUTHENTICATE PLAIN with authzid = the list: the second device reads its own copy', async () => {
    const device = world.alice.devices[1]!;
    const { report, body } = await imaplib('plain', world.alice.address, device);
    expect(report).toMatchObject({ login: 'OK', select: 'read-only', uids: ['1'] });
    expect((await decryptWith(body('1'), device)).equals(POST)).toBe(true);
    expect(await fails(body('1'), world.alice.devices[0]!)).toBe(true);
  });

  it('SASL-IR form; pipelined writes each get NO [NOPERM]; a refused APPEND literal is never asked for', async () => {
    const before = await storedMessages(world, LIST);
    const mailboxesBefore = await storedMailboxes(world, LIST);
    const bob = world.bob.devices[0]!;
    const { wire, reply } = await login(
      `A AUTHENTICATE PLAIN ${sasl(LIST, world.bob.address, bob.password)}`,
    );
    expect(reply).toMatch(/^OK /);
    wire.send('S SELECT INBOX\r\n');
    const selected = await wire.waitFor(/\nS OK[^\r\n]*\r\n/);
    expect(selected).toMatch(/\nS OK \[READ-ONLY\]/);
    const writes = [
      'STORE 1 +FLAGS (\\Seen)',
      'UID STORE 1 +FLAGS.SILENT (\\Deleted)',
      'EXPUNGE',
      'UID EXPUNGE 1',
      'COPY 1 INBOX',
      'UID MOVE 1 INBOX',
      'APPEND INBOX {12+}\r\nSubject: x\r\n',
      'CREATE Other',
      'DELETE INBOX',
      'RENAME INBOX Renamed',
      'SUBSCRIBE INBOX',
      'SETACL INBOX carol@lists.test lrswipkxtea',
      'SETMETADATA INBOX (/private/comment "x")',
    ];
    const start = wire.received().length;
    wire.send(
      writes.map((command, i) => `W${i} ${command}\r\n`).join('') + 'R FETCH 1 (FLAGS BODY[])\r\n',
    );
    const text = (await wire.waitFor(/\nR OK[^\r\n]*\r\n/)).slice(start);
    const replies = taggedReplies(text);
    // Each tag answered once. The embedded store completes pipelined commands in order;
    // Dovecot may complete the FETCH before a NOOP (RFC 3501 §5.5 lets it): clients go by tag.
    const tags = [...writes.map((_, i) => `W${i}`), 'R'];
    if (kind === 'embedded') expect([...replies.keys()]).toEqual(tags);
    else expect([...replies.keys()].sort()).toEqual([...tags].sort());
    for (const [tag, answer] of replies) if (tag !== 'R') expect(answer, tag).toBe(NOPERM);
    expect(text).not.toMatch(/\\Seen|\\Deleted/);
    expect((await decryptWith(await fetchBody(wire, 1), bob)).equals(POST)).toBe(true);

    // A synchronizing literal: refused at once, no `+` asked of the client.
    const mark = wire.received().length;
    wire.send('Y APPEND INBOX {12}\r\n');
    const refused = (await wire.waitFor(/\nY (?:OK|NO|BAD)[^\r\n]*\r\n/)).slice(mark);
    expect(refused).not.toMatch(/^\+/m);
    expect(taggedReplies(refused).get('Y')).toBe(NOPERM);
    wire.send('Z NOOP\r\n');
    await wire.waitFor(/\nZ OK[^\r\n]*\r\n/);
    wire.close();

    expect(await storedMessages(world, LIST)).toEqual(before);
    expect(await storedMailboxes(world, LIST)).toEqual(mailboxesBefore);
  });

  it('every failure is the same AUTHENTICATIONFAILED, in both forms', async () => {
    const { alice, bob, carol, owner } = world;
    const pw = alice.devices[0]!.password;
    const cases: [string, string, string][] = [
      // [authzid (the archive), authcid (who authenticates), password]
      [LIST, alice.address, 'wrong-password'], // wrong password
      [LIST, carol.address, carol.devices[0]!.password], // not a member
      [LIST, owner.address, owner.devices[0]!.password], // the list's owner, not a member
      [`nolist@lists.test`, alice.address, pw], // no such list
      [bob.address, alice.address, pw], // a user, not a list: alice may not read bob
      [alice.address.toUpperCase(), alice.address, pw], // herself, as if she were a list
      [LIST, LIST, pw], // the list as the one who authenticates
      [alice.address, LIST, pw],
    ];
    for (const [authzid, authcid, password] of cases) {
      expect(await attempt(`A LOGIN "${authzid}*${authcid}" "${password}"`), authzid).toBe(FAILED);
      expect(
        await attempt(`A AUTHENTICATE PLAIN ${sasl(authzid, authcid, password)}`),
        authzid,
      ).toBe(FAILED);
    }
    // Logging in as the list itself is no way in either.
    expect(await attempt(`A LOGIN "${LIST}" "${pw}"`)).toBe(FAILED);
  });

  it('imapflow: `<list>*<member>` (LOGIN) and authzid (SASL PLAIN) open the archive read-only', async () => {
    const device = world.alice.devices[0]!;
    for (const auth of [
      { user: `${LIST}*${world.alice.address}`, pass: device.password, loginMethod: 'LOGIN' },
      { user: world.alice.address, pass: device.password, authzid: LIST },
    ]) {
      const client = new ImapFlow({
        host: '127.0.0.1',
        port: world.tlsPort,
        secure: true,
        tls: { rejectUnauthorized: false },
        auth,
        logger: false,
      });
      await client.connect();
      try {
        const mailbox = await client.mailboxOpen('INBOX');
        expect(mailbox.readOnly).toBe(true);
        const message = await client.fetchOne('1', { source: true }, { uid: true });
        expect(message).not.toBe(false);
        const source = (message as { source: Buffer }).source;
        expect((await decryptWith(source, device)).equals(POST)).toBe(true);
        expect(await client.messageFlagsAdd('1', ['\\Flagged'], { uid: true })).toBe(false);
      } finally {
        await client.logout();
      }
    }
    expect((await storedMessages(world, LIST))[0]!.flags).not.toMatch(/\\Flagged|\\Seen/);
  });

  it('normal logins are unaffected: read-write INBOX, composed keys, SASL authzid = authcid, `*` in a local part', async () => {
    const { alice, starred } = world;
    const device = alice.devices[0]!;
    const { wire, reply } = await login(`A LOGIN "${alice.address}" "${device.password}"`);
    expect(reply).toMatch(/^OK /);
    wire.send('S SELECT INBOX\r\n');
    expect(await wire.waitFor(/\nS OK[^\r\n]*\r\n/)).toMatch(/\nS OK \[READ-WRITE\]/);
    expect((await decryptWith(await fetchBody(wire, 1), device)).equals(POST)).toBe(true);
    wire.send('T UID STORE 1 +FLAGS (\\Flagged)\r\n');
    expect(taggedReplies(await wire.waitFor(/\nT (?:OK|NO|BAD)[^\r\n]*\r\n/)).get('T')).toMatch(
      /^OK /,
    );
    wire.close();
    expect(
      await attempt(`A AUTHENTICATE PLAIN ${sasl(alice.address, alice.address, device.password)}`),
    ).toMatch(/^OK /);
    // A `*` in a local part is no archive login. Dovecot's default auth_username_chars
    // has no `*`, so there the device gets past the proxy and the store refuses the name.
    expect(await attempt(`A LOGIN "${starred.address}" "${starred.devices[0]!.password}"`)).toMatch(
      kind === 'embedded' ? /^OK / : /^NO \[UNAVAILABLE\]/,
    );
  });

  it('a rotation reaches an open archive session: the new post reads, the old one still does', async () => {
    const device = world.alice.devices[0]!;
    const wire = await archiveSession(world.alice.address, device.password);
    const second = await rotateListAndPost(world, `g2-${kind}`, POST);
    wire.send('N NOOP\r\n');
    await wire.waitFor(/\nN OK[^\r\n]*\r\n/);
    expect((await decryptWith(await fetchBody(wire, 2), device)).equals(second)).toBe(true);
    expect((await decryptWith(await fetchBody(wire, 1), device)).equals(POST)).toBe(true);
    wire.close();
  });

  it('a post through the real MX is archived encrypted and members read it through the archive login', async () => {
    const marker = `ARCHIVED-${kind}-${Date.now().toString(36)}`;
    const text = readFileSync(join(fixtures, 'post-untagged.eml'), 'latin1')
      .replace('%ID%', `archive-${kind}`)
      .replace('%MARKER%', marker);
    const sent = await post(world.mx.port, world.bob.address, LIST, Buffer.from(text, 'latin1'));
    expect(sent.rcpt).toMatch(/^250/);
    expect(sent.data).toMatch(/^250/);
    const archived = (await storedMessages(world, LIST)).at(-1)!;
    expect(archived.body.includes(marker)).toBe(false);
    for (const [member, device, other] of [
      [world.bob, world.bob.devices[0]!, world.alice.devices[0]!],
      [world.alice, world.alice.devices[1]!, world.bob.devices[0]!],
    ] as const) {
      const wire = await archiveSession(member.address, device.password);
      const body = await fetchBody(wire, archived.uid);
      wire.close();
      expect(body.length).toBe(archived.body.length);
      const plain = (await decryptWith(body, device)).toString('latin1');
      expect(plain).toContain(marker);
      expect(plain).toMatch(/^List-Id: .*<team\.lists\.test>/m);
      expect(await fails(body, other)).toBe(true);
    }
  });

  it("a removed member's open archive session ends; their next archive login fails, their own still works", async () => {
    const { bob } = world;
    const device = bob.devices[0]!;
    const wire = await archiveSession(bob.address, device.password);
    expect((await decryptWith(await fetchBody(wire, 1), device)).equals(POST)).toBe(true);
    await world.keyStore.removeListMember(LIST, bob.address);
    await wire.waitFor(/\* BYE [^\r\n]*\r\n/);
    await wire.closed();
    expect(await attempt(`A LOGIN "${LIST}*${bob.address}" "${device.password}"`)).toBe(FAILED);
    expect(await attempt(`A LOGIN "${bob.address}" "${device.password}"`)).toMatch(/^OK /);
  });
});
