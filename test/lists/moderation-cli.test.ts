/**
 * Moderated lists, through the real `recrypt` processes: the list owner's CLI
 * (its own owner key file and list key file) against the real admin server over TLS with
 * a real held-post store on disk. Posts are held as the MX holds them, S/MIME to the list
 * group (wrapMessage), before and after a rotation. Delivery and notices are recorded in
 * this test: the real ones are wired into the gateway by src/gateway/start.ts and tested
 * end to end with the MX.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileHeldPostStore } from '../../src/lists/held-posts.js';
import type { ListPostDelivery, Notice, NoticeSender } from '../../src/lists/ports.js';
import { encodeOwnerKeyFile } from '../../src/owner/key-file.js';
import { wrapMessage } from '../../src/recrypt/index.js';
import { makeOwner, startApiGateway, type ApiGateway } from '../helpers/cli-api.js';
import { enrolOwner } from '../helpers/owner-enrolment.js';
import { runCli, type CliResult } from '../helpers/cli-run.js';
import { tempDir } from '../helpers/tmp.js';

const LIST = 'mods@example.org';
const PASSPHRASE = 'correct horse battery staple';

interface Person {
  address: string;
  run(args: string[]): Promise<CliResult>;
}

describe('recrypt list held|approve|reject', () => {
  const dir = tempDir('recrypt-held-cli-');
  const store = new FileHeldPostStore({ dataDir: join(dir.path, 'gateway') });
  const delivered: Array<{ list: string; mailFrom: string; ciphertext: Buffer }> = [];
  const delivery: ListPostDelivery = {
    deliverPost(list, mailFrom, ciphertext) {
      delivered.push({ list, mailFrom, ciphertext: Buffer.from(ciphertext) });
      return Promise.resolve({ local: 2, remote: 0 });
    },
  };
  const notices: Notice[] = [];
  const noticeSender: NoticeSender = {
    send(notice) {
      notices.push(notice);
      return Promise.resolve();
    },
  };
  let gw: ApiGateway;
  let owner: Person;
  let alice: Person;

  /** An enrolled owner with an owner key file in its own directory, running the CLI there. */
  async function person(name: string): Promise<Person> {
    const address = `${name}@example.org`;
    const { key } = await enrolOwner(gw, address);
    const home = join(dir.path, name);
    mkdirSync(home);
    writeFileSync(join(home, 'owner.key'), await encodeOwnerKeyFile(key, PASSPHRASE), {
      mode: 0o600,
    });
    return {
      address,
      run: (args) => runCli(args, { cwd: home, env: { RECRYPT_PASSPHRASE: PASSPHRASE } }),
    };
  }

  /** What the MX holds: the post encrypted once to the list's current group. */
  async function holdPost(
    mailFrom: string,
    headers: string,
  ): Promise<{ id: string; bytes: Buffer }> {
    const list = await gw.keyStore.getList(LIST);
    const plain = Buffer.from(`${headers}\r\n\r\nThe body of the post.\r\n`);
    const bytes = Buffer.from(wrapMessage(plain, list!.group.certificate));
    return { id: (await store.hold(LIST, mailFrom, bytes)).id, bytes };
  }

  function ok(result: CliResult): string {
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    return result.stdout;
  }

  beforeAll(async () => {
    gw = await startApiGateway({ moderation: { held: store, delivery, notices: noticeSender } });
    [owner, alice] = await Promise.all([person('owner'), person('alice')]);
    ok(await owner.run(['list', 'create', LIST, '--policy', 'moderated']));
  });
  afterAll(async () => {
    await gw?.close();
    dir.remove();
  });

  it('lists held posts read with the list key, before and after a rotation', async () => {
    const empty = ok(await owner.run(['list', 'held', LIST]));
    expect(empty.trim()).toBe(`no posts held for ${LIST}`);

    const before = await holdPost(
      'early@example.net',
      'From: Early Bird <early@example.net>\r\nSubject: =?UTF-8?B?R3LDvMOfZQ==?= from before\r\n' +
        'Date: Sun, 29 Nov 2026 08:00:00 +0000',
    );
    ok(await owner.run(['list', 'rotate', LIST]));
    const after = await holdPost(
      'late@example.net',
      'From: late@example.net\r\nSubject: after the \x1b[31mrotation\r\nDate: Sun, 29 Nov 2026 09:30:00 +0100',
    );
    const stranger = await makeOwner('stranger@example.org');
    const unreadable = Buffer.from(
      wrapMessage(Buffer.from('Subject: not for this list\r\n\r\nx'), stranger.group),
    );
    const foreign = await store.hold(LIST, 'odd@example.net', unreadable);

    const out = ok(await owner.run(['list', 'held', LIST]));
    expect(out).toContain(`3 post(s) held for ${LIST}:`);
    const block = (id: string) => out.slice(out.indexOf(id)).split('\n\n')[0]!;
    expect(block(before.id)).toContain(`${before.bytes.length} bytes`);
    expect(block(before.id)).toContain('envelope sender: early@example.net');
    expect(block(before.id)).toContain('From:    "Early Bird" <early@example.net>');
    expect(block(before.id)).toContain('Subject: Grüße from before');
    expect(block(before.id)).toContain('Date:    2026-11-29T08:00:00.000Z');
    expect(block(after.id)).toContain('Subject: after the ?[31mrotation');
    expect(block(after.id)).toContain('Date:    2026-11-29T08:30:00.000Z');
    expect(block(foreign.id)).toContain('envelope sender: odd@example.net');
    expect(block(foreign.id)).toMatch(/the list key cannot read this post/);
    expect(block(foreign.id)).not.toContain('not for this list');
    // Oldest first.
    expect(out.indexOf(before.id)).toBeLessThan(out.indexOf(after.id));
    expect(out.indexOf(after.id)).toBeLessThan(out.indexOf(foreign.id));

    // Reads only, each its own CLI process: at once.
    const [whole, refused] = await Promise.all([
      owner.run(['list', 'held', LIST, before.id]).then(ok),
      owner.run(['list', 'held', LIST, foreign.id]),
    ]);
    expect(whole).toContain('The body of the post.');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^recrypt: held post \S+ does not open with the list key/);

    for (const id of [before.id, after.id, foreign.id]) await store.remove(LIST, id);
  });

  it('approve delivers the exact held bytes; reject tells the poster', async () => {
    const first = await holdPost('one@example.net', 'From: one@example.net\r\nSubject: yes');
    const second = await holdPost('two@example.net', 'From: two@example.net\r\nSubject: no');

    // Two posts, two decisions that do not touch each other: at once.
    const [approved, rejected] = await Promise.all([
      owner.run(['list', 'approve', LIST, first.id]).then(ok),
      owner.run(['list', 'reject', LIST, second.id, '--reason', 'Please stay on topic.']).then(ok),
    ]);
    expect(approved.trim()).toBe(`post ${first.id} approved: delivered to 2 mailbox(es)`);
    expect(delivered).toHaveLength(1);
    expect(delivered[0]!.list).toBe(LIST);
    expect(delivered[0]!.mailFrom).toBe('one@example.net');
    expect(delivered[0]!.ciphertext.equals(first.bytes)).toBe(true);
    expect(await store.get(LIST, first.id)).toBeNull();
    expect(rejected.trim()).toBe(`post ${second.id} rejected; two@example.net has been told`);
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatchObject({ to: 'two@example.net', from: 'mods-owner@example.org' });
    expect(notices[0]!.text).toContain('rejected by the moderator');
    expect(notices[0]!.text).toContain('Please stay on topic.');
    expect(await store.list(LIST)).toEqual([]);
    expect(delivered).toHaveLength(1);
  });

  it('refuses other people (403) and unknown posts (404), as one line on stderr', async () => {
    const post = await holdPost('three@example.net', 'From: three@example.net\r\nSubject: hi');
    const byAlice = [
      ['list', 'approve', LIST, post.id],
      ['list', 'reject', LIST, post.id],
    ];
    const unknown = [
      ['list', 'approve', LIST, '0123456789abcdef0123456789abcdef'],
      ['list', 'reject', LIST, '../../keystore'],
      ['list', 'held', LIST, '0123456789abcdef0123456789abcdef'],
    ];
    // Every one of them is refused and changes nothing: they run at once.
    const [refusedAlice, noKey, refusedUnknown] = await Promise.all([
      Promise.all(byAlice.map((args) => alice.run(args))),
      alice.run(['list', 'held', LIST]),
      Promise.all(unknown.map((args) => owner.run(args))),
    ]);
    for (const result of refusedAlice) {
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr).toBe('recrypt: the gateway refused: not the list owner (HTTP 403)\n');
    }
    // Alice has no list key file: refused before anything is fetched.
    expect(noKey.code).toBe(1);
    expect(noKey.stderr).toBe(`recrypt: no list key file at ${LIST}.list.key\n`);
    refusedUnknown.forEach((result, i) => {
      expect(result.code, unknown[i]!.join(' ')).toBe(1);
      expect(result.stderr).toBe('recrypt: the gateway refused: held post not found (HTTP 404)\n');
    });
    expect((await store.list(LIST)).map((p) => p.id)).toEqual([post.id]);
    expect(delivered).toHaveLength(1);
    expect(notices).toHaveLength(1);
  });
});
