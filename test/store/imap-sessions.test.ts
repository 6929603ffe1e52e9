import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plain, startStoreServer, Wire, type StoreServer } from '../helpers/store-imap.js';
import { sampleMessages } from '../helpers/store-messages.js';

/**
 * Two sessions on one mailbox: what one changes, the other is told, with sequence
 * numbers that stay consistent (RFC 3501 §5.2, §7.4.1; IDLE RFC 2177).
 */
describe('IMAP concurrent sessions', () => {
  let s: StoreServer;
  const wires: Wire[] = [];

  async function login(): Promise<Wire> {
    const w = await Wire.open(s.server.port);
    wires.push(w);
    expect(await w.command('l', `AUTHENTICATE PLAIN ${plain('alice')}`)).toMatch(/^l OK/m);
    return w;
  }

  beforeAll(async () => {
    s = await startStoreServer(['alice']);
    const [m1, m2, m3] = sampleMessages() as [Buffer, Buffer, Buffer];
    for (const m of [m1, m2, m3, m1, m2]) await s.store.deliver('alice', m);
  });

  afterAll(async () => {
    for (const w of wires) w.close();
    await s.stop();
  });

  it('a session in IDLE sees FETCH FLAGS, EXPUNGE and EXISTS from another session and from delivery', async () => {
    const a = await login();
    const b = await login();
    expect(await a.command('s', 'SELECT INBOX')).toMatch(/\* 5 EXISTS/);
    expect(await b.command('s', 'SELECT INBOX')).toMatch(/\* 5 EXISTS/);
    b.send('i IDLE\r\n');
    await b.until(/^\+ [^\r\n]*\r\n/m);

    await a.command('f', 'STORE 2 +FLAGS (\\Flagged)');
    expect(await b.until(/^\* 2 FETCH \(FLAGS \([^)]*\)\)\r\n/m)).toMatch(
      /\* 2 FETCH \(FLAGS \(\\Flagged\)\)/,
    );

    await a.command('d', 'STORE 1,3 +FLAGS.SILENT (\\Deleted)');
    expect(await a.command('e', 'EXPUNGE')).toMatch(
      /\* 3 EXPUNGE\r\n\* 1 EXPUNGE|\* 1 EXPUNGE\r\n\* 2 EXPUNGE/,
    );
    // b knew 5 messages with UIDs 1..5; removing UIDs 1 and 3 must reach it as two EXPUNGEs that keep its numbering right
    const expunges = await b.until(/^\* \d+ EXPUNGE\r\n(?:[^\r\n]*\r\n)*?\* \d+ EXPUNGE\r\n/m);
    const seqs = [...expunges.matchAll(/\* (\d+) EXPUNGE/g)].map((m) => Number(m[1]));
    expect(seqs.length).toBe(2);
    const view = [1, 2, 3, 4, 5];
    for (const seq of seqs) view.splice(seq - 1, 1);
    expect(view).toEqual([2, 4, 5]);

    await s.store.deliver('alice', sampleMessages()[0] as Buffer);
    expect(await b.until(/^\* 4 EXISTS\r\n/m)).toContain('* 4 EXISTS');

    b.send('DONE\r\n');
    await b.until(/^i OK [^\r\n]*\r\n/m);
    expect(await b.command('u', 'UID FETCH 1:* (UID FLAGS)')).toMatch(
      /\* 1 FETCH \(UID 2 FLAGS \(\\Flagged\)\)\r\n\* 2 FETCH \(UID 4 FLAGS \(\)\)\r\n\* 3 FETCH \(UID 5 FLAGS \(\)\)\r\n\* 4 FETCH \(UID 6 FLAGS/,
    );
    await a.command('x', 'LOGOUT');
    await b.command('x', 'LOGOUT');
  });

  it('holds EXPUNGE back during FETCH, STORE and SEARCH by sequence number, sends it on NOOP', async () => {
    const a = await login();
    const b = await login();
    await a.command('s', 'SELECT INBOX');
    const sel = await b.command('s', 'SELECT INBOX');
    const count = Number(/\* (\d+) EXISTS/.exec(sel)?.[1]);
    expect(count).toBeGreaterThanOrEqual(2);

    await a.command('d', 'STORE 1 +FLAGS.SILENT (\\Deleted)');
    await a.command('e', 'EXPUNGE');
    const fetch = await b.command('f', 'FETCH 1:* FLAGS');
    expect(fetch).not.toMatch(/^\* \d+ EXPUNGE/m);
    // the flag change that came with the \Deleted store may be reported; the numbering is still b's old view
    expect(fetch).toContain(`* ${count} FETCH`);
    expect(await b.command('t', `STORE ${count} +FLAGS (\\Seen)`)).not.toMatch(/EXPUNGE/);
    expect(await b.command('r', 'SEARCH ALL')).not.toMatch(/EXPUNGE/);

    const noop = await b.command('n', 'NOOP');
    expect(noop).toMatch(/^\* 1 EXPUNGE\r\n/m);
    const after = await b.command('f2', 'FETCH 1:* UID');
    expect([...after.matchAll(/\* \d+ FETCH/g)].length).toBe(count - 1);
    await a.command('x', 'LOGOUT');
    await b.command('x', 'LOGOUT');
  });

  it('UID commands may carry the EXPUNGE immediately', async () => {
    const a = await login();
    const b = await login();
    await a.command('s', 'SELECT INBOX');
    await b.command('s', 'SELECT INBOX');
    await a.command('d', 'STORE 1 +FLAGS.SILENT (\\Deleted)');
    await a.command('e', 'EXPUNGE');
    expect(await b.command('u', 'UID FETCH 1:* FLAGS')).toMatch(/^\* 1 EXPUNGE\r\n/m);
    await a.command('x', 'LOGOUT');
    await b.command('x', 'LOGOUT');
  });
});
