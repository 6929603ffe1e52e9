/**
 * A real Thunderbird for the client tests: an Xvfb display of its own (the server picks a
 * free display number and reports it with `-displayfd`), a fresh profile whose user.js
 * turns off first-run dialogs and turns on Marionette on a port Thunderbird picks
 * (written to `MarionetteActivePort`), and IMAP protocol logging (MOZ_LOG) so a test can
 * see how Thunderbird fetched. Screenshots come from ImageMagick's `import` on that display.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireBinary } from './binaries.js';
import { cleanEnv, spawnGroup, waitFor, type Spawned } from './gateway-process.js';
import { Marionette } from './thunderbird-marionette.js';

/** Both starts compete for two cores with the gateway's; a loaded machine needs minutes. */
const STARTUP_TIMEOUT_MS = 180_000;

export interface Thunderbird {
  version: string;
  profile: string;
  display: string;
  marionette: Marionette;
  /** Thunderbird's own IMAP protocol log (commands only; it suppresses login lines). */
  imapLog(): string;
  /** The whole Xvfb screen as a PNG file. */
  screenshot(file: string): void;
  close(): Promise<void>;
}

/** user.js of a fresh profile: nothing may open a dialog the test does not drive. */
function userJs(): string {
  const prefs: Record<string, string | number | boolean> = {
    'marionette.port': 0,
    'mail.provider.suppress_dialog_on_startup': true,
    'mail.shell.checkDefaultClient': false,
    'mail.rights.override': true,
    'mail.spotlight.firstRunDone': true,
    'mail.winsearch.firstRunDone': true,
    'mailnews.start_page.enabled': false,
    'mail.inappnotifications.enabled': false,
    'datareporting.policy.dataSubmissionEnabled': false,
    'datareporting.healthreport.uploadEnabled': false,
    'toolkit.telemetry.reportingpolicy.firstRun': false,
    'app.update.disabledForTesting': true,
    'extensions.update.enabled': false,
    'browser.aboutConfig.showWarning': false,
    'mail.biff.play_sound': false,
    'mail.biff.show_alert': false,
    'mail.biff.show_tray_icon': false,
    'calendar.timezone.local': 'UTC',
    // A Local Folders account, so the profile counts as set up (no account hub tab).
    'mail.accountmanager.accounts': 'account1',
    'mail.accountmanager.localfoldersserver': 'server1',
    'mail.account.account1.server': 'server1',
    'mail.server.server1.type': 'none',
    'mail.server.server1.hostname': 'Local Folders',
    'mail.server.server1.userName': 'nobody',
    'mail.server.server1.name': 'Local Folders',
    'mail.server.server1.directory-rel': '[ProfD]Mail/Local Folders',
  };
  return Object.entries(prefs)
    .map(([name, value]) => `user_pref(${JSON.stringify(name)}, ${JSON.stringify(value)});`)
    .join('\n');
}

/** Starts Xvfb and reads the display number it chose from the pipe given as fd 3. */
async function startXvfb(): Promise<{ child: ChildProcess; display: string }> {
  const child = spawn(
    requireBinary('Xvfb'),
    ['-displayfd', '3', '-screen', '0', '1280x1024x24', '-nolisten', 'tcp'],
    { stdio: ['ignore', 'ignore', 'pipe', 'pipe'], detached: true },
  );
  let errText = '';
  child.stderr!.on('data', (chunk: Buffer) => (errText += chunk.toString('utf8')));
  const number = await new Promise<string>((resolve, reject) => {
    let text = '';
    const pipe = child.stdio[3] as NodeJS.ReadableStream;
    pipe.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
      if (text.includes('\n')) resolve(text.trim());
    });
    child.once('exit', (code) => reject(new Error(`Xvfb exited (${code}): ${errText}`)));
  });
  return { child, display: `:${number}` };
}

export async function startThunderbird(dir: string): Promise<Thunderbird> {
  const binary = requireBinary('thunderbird');
  const importTool = requireBinary('import');
  const version = execFileSync(binary, ['--version'], { encoding: 'utf8' }).trim();
  const profile = join(dir, 'profile');
  const logDir = join(dir, 'moz-log');
  mkdirSync(profile, { recursive: true });
  mkdirSync(logDir, { recursive: true });
  writeFileSync(join(profile, 'user.js'), userJs());
  const xvfb = await startXvfb();
  let thunderbird: Spawned | undefined;
  let marionette: Marionette | undefined;
  const stopXvfb = async () => {
    if (xvfb.child.exitCode !== null) return;
    const exited = new Promise((resolve) => xvfb.child.once('exit', resolve));
    xvfb.child.kill('SIGTERM');
    await exited;
  };
  try {
    thunderbird = spawnGroup(
      binary,
      ['--profile', profile, '--no-remote', '--marionette', '--remote-allow-system-access'],
      {
        cwd: dir,
        env: cleanEnv({
          DISPLAY: xvfb.display,
          HOME: dir,
          // Debug, not verbose: commands and responses without per-read socket traces.
          MOZ_LOG: 'IMAP:4',
          MOZ_LOG_FILE: join(logDir, 'imap'),
          // Crash reports and the "safe mode?" question after an unclean stop stay out.
          MOZ_CRASHREPORTER_DISABLE: '1',
          MOZ_DISABLE_AUTO_SAFE_MODE: '1',
        }),
      },
    );
    const portFile = join(profile, 'MarionetteActivePort');
    const running = thunderbird;
    await waitFor(
      'Thunderbird to start Marionette',
      () => {
        if (running.child.exitCode !== null) {
          throw new Error(`thunderbird exited: ${running.output()}`);
        }
        return existsSync(portFile) && readFileSync(portFile, 'utf8').trim() !== '';
      },
      STARTUP_TIMEOUT_MS,
    );
    marionette = await Marionette.open(Number(readFileSync(portFile, 'utf8').trim()));
    // The whole screen, so the screenshots show the message at a readable size.
    await marionette.execute('window.moveTo(0, 0); window.resizeTo(screen.width, screen.height);');
  } catch (error) {
    await thunderbird?.stop(2000);
    await stopXvfb();
    throw error;
  }
  const started = thunderbird;
  const client = marionette;
  return {
    version,
    profile,
    display: xvfb.display,
    marionette: client,
    imapLog: () =>
      readdirSync(logDir)
        .map((name) => readFileSync(join(logDir, name), 'utf8'))
        .join('\n'),
    screenshot(file) {
      execFileSync(importTool, ['-display', xvfb.display, '-window', 'root', file]);
    },
    async close() {
      client.close();
      await started.stop(5000);
      await stopXvfb();
    },
  };
}
