/**
 * The tightening pass over an existing data directory (src/gateway/data-dir.ts): group
 * and other bits go from every file and directory inside, links are neither followed
 * nor changed (a link to a directory outside must not hand that directory to the pass),
 * and a socket path too long for sun_path is refused by name before listen.
 */
import { chmodSync, lstatSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tightenTree, unixSocketPath } from '../../src/gateway/data-dir.js';
import { StartupError } from '../../src/gateway/startup-errors.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir('recrypt-data-dir-');
afterAll(() => tmp.remove());

const mode = (path: string) => lstatSync(path).mode & 0o7777;

describe('tightenTree', () => {
  it('removes group/other bits inside, leaves what links point to alone', () => {
    const data = join(tmp.path, 'data');
    const outsideDir = join(tmp.path, 'outside');
    mkdirSync(join(data, 'mail', 'cur'), { recursive: true });
    mkdirSync(outsideDir);
    writeFileSync(join(data, 'mail', 'cur', 'msg'), 'm');
    writeFileSync(join(data, 'script'), '#!/bin/sh\n');
    writeFileSync(join(outsideDir, 'theirs'), 't');
    chmodSync(join(data, 'mail', 'cur', 'msg'), 0o664);
    chmodSync(join(data, 'script'), 0o4755);
    chmodSync(join(data, 'mail', 'cur'), 0o777);
    chmodSync(join(data, 'mail'), 0o750);
    chmodSync(data, 0o755);
    chmodSync(outsideDir, 0o755);
    chmodSync(join(outsideDir, 'theirs'), 0o644);
    symlinkSync(outsideDir, join(data, 'dir-link'));
    symlinkSync(join(outsideDir, 'theirs'), join(data, 'file-link'));

    const counts = tightenTree(data);
    expect(mode(data)).toBe(0o700);
    expect(mode(join(data, 'mail'))).toBe(0o700);
    expect(mode(join(data, 'mail', 'cur'))).toBe(0o700);
    expect(mode(join(data, 'mail', 'cur', 'msg'))).toBe(0o600);
    expect(mode(join(data, 'script'))).toBe(0o700);
    expect(mode(outsideDir)).toBe(0o755);
    expect(mode(join(outsideDir, 'theirs'))).toBe(0o644);
    expect(counts.changed).toBe(5);
    // A second pass finds nothing to do.
    expect(tightenTree(data).changed).toBe(0);
  });
});

describe('unixSocketPath', () => {
  it('resolves against the data directory and refuses a path sun_path cannot hold', () => {
    expect(unixSocketPath('/var/lib/recrypt', 'store-lmtp.sock', 'mailStore.lmtpSocket')).toBe(
      '/var/lib/recrypt/store-lmtp.sock',
    );
    const deep = `/${'d'.repeat(100)}`;
    expect(() => unixSocketPath(deep, 'store-lmtp.sock', 'mailStore.lmtpSocket')).toThrow(
      StartupError,
    );
    expect(() => unixSocketPath(deep, 'store-lmtp.sock', 'mailStore.lmtpSocket')).toThrow(
      /^mailStore\.lmtpSocket: .* longer than a Unix socket path may be \(107\)/,
    );
  });
});
