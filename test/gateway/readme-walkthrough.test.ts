/**
 * The README's walkthrough, run exactly as written: every ```sh block preceded by
 * `<!-- walkthrough -->` is concatenated into one bash script and run in a fresh clone
 * (sources copied, node_modules linked in place of `npm ci`), with the default ports.
 * It must read the original message back with `openssl cms -decrypt` (and `recrypt read`).
 * Its last block writes `~/.recrypt/neomuttrc` (HOME is a temp dir here); the neomutt test then
 * runs neomutt with exactly that file in a terminal (tmux) against the gateway the
 * walkthrough left running, and checks the decrypted message on the screen.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { requireBinary } from '../helpers/binaries.js';
import {
  cleanEnv,
  freshClone,
  portIsFree,
  ROOT,
  spawnGroup,
  type Spawned,
} from '../helpers/gateway-process.js';
import { openTerminal, type Terminal } from '../helpers/gateway-tmux.js';
import { tempDir } from '../helpers/tmp.js';

const BODY = 'Hello Alice, this is a test message.';
const DEFAULT_PORTS = {
  'smtp.port': 2525,
  'imap.port': 1993,
  'imap.starttlsPort': 1143,
  'admin.port': 8443,
  'operator.port': 8444,
  'mailStore.imapPort': 10143,
};

export function walkthroughBlocks(markdown: string): string[] {
  const blocks: string[] = [];
  const pattern = /<!-- walkthrough -->\s*\n```sh\n([\s\S]*?)```/g;
  for (const match of markdown.matchAll(pattern)) blocks.push(match[1]!);
  return blocks;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

describe('README walkthrough', () => {
  const tmp = tempDir('recrypt-readme-');
  // The user's home: the neomutt block writes ~/.recrypt/ (its neomuttrc too) there.
  const home = join(tmp.path, 'home');
  let run: Spawned | undefined;
  let code: number | string | undefined;
  let terminal: Terminal | undefined;
  afterAll(async () => {
    terminal?.close();
    await run?.stop();
    tmp.remove();
  });

  it('has the walkthrough blocks: the gateway, openssl cms -decrypt, then the neomuttrc', () => {
    const blocks = walkthroughBlocks(readFileSync(join(ROOT, 'README.md'), 'utf8'));
    expect(blocks.length).toBeGreaterThanOrEqual(6);
    expect(blocks.join('\n')).toContain('npm start &');
    expect(blocks.join('\n')).toContain('openssl cms -decrypt');
    expect(blocks.at(-1)).toContain('cat > ~/.recrypt/neomuttrc');
    expect(blocks.at(-1)).toContain('smime_decrypt_command');
  });

  it('runs as written and reads back the original message', async () => {
    for (const name of ['bash', 'curl', 'swaks', 'openssl', 'sed']) requireBinary(name);
    for (const [option, port] of Object.entries(DEFAULT_PORTS)) {
      if (!(await portIsFree(port))) {
        throw new Error(
          `the walkthrough uses the default ports; ${option} ${port} is in use on this machine`,
        );
      }
    }
    const clone = join(tmp.path, 'clone');
    freshClone(clone);
    const script = [
      'set -euo pipefail',
      ...walkthroughBlocks(readFileSync(join(clone, 'README.md'), 'utf8')),
    ].join('\n');
    mkdirSync(home);
    run = spawnGroup('bash', ['-c', script], {
      cwd: clone,
      env: cleanEnv({ TMPDIR: tmp.path, HOME: home }),
    });
    const timeout = setTimeout(() => void run?.stop(1000), 240_000);
    code = await run.exited;
    clearTimeout(timeout);
    const output = run.output();
    expect(code, output).toBe(0);
    // Once from openssl cms -decrypt, once from recrypt read.
    expect(output.split(BODY).length - 1, output).toBeGreaterThanOrEqual(2);
    // What came over IMAP and what is stored are ciphertext.
    expect(readFileSync(join(clone, 'owner', 'fetched.eml'), 'utf8')).not.toContain(BODY);
    const stored = filesUnder(join(clone, 'data', 'mail')).filter((f) => /\/(cur|new)\//.test(f));
    expect(stored.length).toBeGreaterThanOrEqual(1);
    for (const file of stored) expect(readFileSync(file, 'utf8')).not.toContain(BODY);
    // The owner's secrets live only on the owner's side.
    expect(
      filesUnder(join(clone, 'data')).some((f) => f.endsWith('owner.key') || f.endsWith('.p12')),
    ).toBe(false);
  }, 300_000);

  it('reads the message in neomutt over IMAPS, decrypted by OpenSSL', async () => {
    for (const name of ['neomutt', 'tmux']) requireBinary(name);
    // The gateway the walkthrough started is still running (afterAll stops it).
    expect(code, 'the walkthrough script did not finish').toBe(0);
    const muttrc = join(home, '.recrypt', 'neomuttrc');
    expect(existsSync(muttrc), 'the walkthrough wrote no ~/.recrypt/neomuttrc').toBe(true);
    const p12Password = /^\.p12 password \(shown once\): (.+)$/m.exec(run!.output())?.[1];
    expect(p12Password, 'recrypt device add printed no .p12 password').toBeTruthy();
    // -n: no system-wide neomuttrc, so only the README's file configures neomutt.
    const env = cleanEnv({ HOME: home, TMPDIR: tmp.path });
    delete env.TMUX;
    terminal = openTerminal(join(tmp.path, 'tmux.sock'), ['neomutt', '-n', '-F', muttrc], env);
    const index = await terminal.waitFor('+INBOX [Msgs:1');
    expect(index).toContain('hello');
    expect(index).not.toContain(BODY);
    terminal.keys('Enter');
    await terminal.waitFor('Enter S/MIME passphrase:');
    terminal.type(p12Password!);
    terminal.keys('Enter');
    const pager = await terminal.waitFor('[-- End of S/MIME encrypted data. --]');
    expect(pager).toContain('[-- The following data is S/MIME encrypted --]');
    expect(pager).toContain('application/pkcs7-mime; smime-type=enveloped-data');
    expect(pager).toContain(BODY);
  }, 90_000);
});
