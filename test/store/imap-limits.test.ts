import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MASTER, plain, startStoreServer, Wire, type StoreServer } from '../helpers/store-imap.js';

/** Bad input: malformed commands, oversized lines and literals, traversal names, idle clients. */
describe('IMAP limits and bad input', () => {
  let s: StoreServer;
  const wires: Wire[] = [];
  const open = async (): Promise<Wire> => {
    const w = await Wire.open(s.server.port);
    wires.push(w);
    return w;
  };

  beforeAll(async () => {
    s = await startStoreServer(['alice'], {
      limits: { maxLineLength: 1024, maxLiteralSize: 4096, maxBadCommands: 5 },
    });
  });

  afterAll(async () => {
    for (const w of wires) w.close();
    await s.stop();
  });

  it('answers malformed commands with BAD and stays usable', async () => {
    const w = await open();
    expect(await w.command('a', 'FETCH')).toMatch(/^a BAD /m);
    expect(await w.command('b', 'LOGIN')).toMatch(/^b BAD /m);
    w.send('\r\n');
    await w.until(/^\* BAD [^\r\n]*\r\n/m);
    expect(await w.command('c', 'NOOP')).toMatch(/^c OK /m);
    w.close();
  });

  it('refuses an over-long line with BAD and keeps the connection', async () => {
    const w = await open();
    w.send(`x NOOP ${'a'.repeat(5000)}\r\n`);
    expect(await w.until(/^x BAD [^\r\n]*\r\n/m)).toMatch(/TOOBIG/);
    expect(await w.command('c', 'NOOP')).toMatch(/^c OK /m);
    w.close();
  });

  it('closes with BYE an over-long line it cannot resynchronise after (LITERAL+ tail, or mid-command)', async () => {
    // Dropping the line and running what follows would run the literal's bytes as commands.
    const tail = await open();
    await tail.command('l', `AUTHENTICATE PLAIN ${plain('alice')}`);
    tail.send(`x NOOP ${'a'.repeat(2000)} {30+}\r\ny CREATE Injected\r\nz NOOP\r\n`);
    expect(await tail.until(/^\* BYE [^\r\n]*\r\n/m)).toMatch(/TOOBIG/);
    await tail.waitClosed();
    const check = await open();
    await check.command('l', `AUTHENTICATE PLAIN ${plain('alice')}`);
    expect(await check.command('c', 'LIST "" "Injected"')).not.toMatch(/^\* LIST/m);
    const mid = await open();
    await mid.command('l', `AUTHENTICATE PLAIN ${plain('alice')}`);
    mid.send(`x SEARCH TEXT {3+}\r\nabc ${'a'.repeat(2000)}\r\ny NOOP\r\n`);
    expect(await mid.until(/^\* BYE [^\r\n]*\r\n/m)).toMatch(/TOOBIG/);
    await mid.waitClosed();
  });

  it('refuses an oversized synchronizing literal before the client sends it', async () => {
    const w = await open();
    await w.command('l', `AUTHENTICATE PLAIN ${plain('alice')}`);
    w.send('a APPEND INBOX {100000}\r\n');
    const reply = await w.until(/^a (OK|NO|BAD)[^\r\n]*\r\n/m);
    expect(reply).toMatch(/^a NO \[TOOBIG\]/m);
    expect(reply).not.toMatch(/^\+/m);
    expect(await w.command('c', 'STATUS INBOX (MESSAGES)')).toMatch(/MESSAGES 0/);
    w.close();
  });

  it('closes the connection on an oversized LITERAL+ (the data is already on its way)', async () => {
    const w = await open();
    await w.command('l', `AUTHENTICATE PLAIN ${plain('alice')}`);
    w.send(`a APPEND INBOX {100000+}\r\n${'x'.repeat(2000)}`);
    expect(await w.until(/^\* BYE [^\r\n]*\r\n/m)).toMatch(/TOOBIG/);
    await w.waitClosed();
  });

  it('refuses path traversal and control characters in mailbox names', async () => {
    const w = await open();
    await w.command('l', `AUTHENTICATE PLAIN ${plain('alice')}`);
    for (const name of [
      '"../evil"',
      '"a/../../b"',
      '".."',
      '"INBOX/../../x"',
      '"/etc/passwd"',
      '"a//b"',
      '"tab\tname"',
      '"x/."',
    ]) {
      expect(await w.command('c', `CREATE ${name}`)).toMatch(/^c (NO|BAD) /m);
    }
    w.send('n CREATE {3+}\r\na\u0000b\r\n');
    expect(await w.until(/^n (OK|NO|BAD)[^\r\n]*\r\n/m)).toMatch(/^n (NO|BAD) /m);
    expect(await w.command('s', 'SELECT "../../../etc"')).toMatch(/^s (NO|BAD) /m);
    const list = await w.command('l2', 'LIST "" "*"');
    expect(list).not.toMatch(/evil|passwd|etc/);
    w.close();
  });

  it('logs out a client after too many bad commands', async () => {
    const w = await open();
    for (let i = 0; i < 5; i++) w.send(`b${i} BOGUS\r\n`);
    expect(await w.until(/^\* BYE [^\r\n]*\r\n/m)).toMatch(/invalid/i);
    await w.waitClosed();
  });

  it('logs out an idle client after the idle timeout', async () => {
    const short = await startStoreServer(['alice'], { idleTimeoutMs: 300 });
    try {
      const w = await Wire.open(short.server.port);
      wires.push(w);
      expect(await w.until(/^\* BYE [^\r\n]*\r\n/m, 10_000)).toMatch(/Autologout/);
      await w.waitClosed();
    } finally {
      await short.stop();
    }
  });

  it('refuses LOGIN for a user and PLAIN without authzid unless allowed', async () => {
    const w = await open();
    expect(await w.command('a', `LOGIN alice ${'master-secret-for-tests'}`)).toMatch(
      /^a NO \[AUTHENTICATIONFAILED\]/m,
    );
    expect(
      await w.command(
        'b',
        `AUTHENTICATE PLAIN ${Buffer.from('\u0000alice\u0000master-secret-for-tests').toString('base64')}`,
      ),
    ).toMatch(/^b NO /m);
    expect(
      await w.command('c', `AUTHENTICATE PLAIN ${plain('alice', 'gateway', 'wrong')}`),
    ).toMatch(/^c NO \[AUTHENTICATIONFAILED\]/m);
    expect(await w.command('d', `AUTHENTICATE PLAIN ${plain('alice')}`)).toMatch(/^d OK /m);
    w.close();
  });

  it('with allowUserLogin, accepts a user own LOGIN with the master password, never the master user itself', async () => {
    const open_ = await startStoreServer(['alice'], { allowUserLogin: true });
    try {
      const w = await Wire.open(open_.server.port);
      wires.push(w);
      expect(await w.command('a', 'LOGIN alice wrong')).toMatch(/^a NO \[AUTHENTICATIONFAILED\]/m);
      expect(await w.command('b', `LOGIN gateway ${MASTER.password}`)).toMatch(/^b NO /m);
      expect(await w.command('c', `LOGIN alice ${MASTER.password}`)).toMatch(/^c OK /m);
      expect(await w.command('d', 'SELECT INBOX')).toMatch(/^d OK \[READ-WRITE\]/m);
      w.close();
    } finally {
      await open_.stop();
    }
  });
});
