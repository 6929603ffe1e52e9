/**
 * config/systemd/recrypt.service: systemd's own checker accepts it, and it keeps what
 * docs/deployment.md promises — reload by SIGHUP, the drain time to stop, the low ports
 * without root, and a sandbox in which only the state directory is writable.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { requireBinary } from '../helpers/binaries.js';
import { ROOT } from '../helpers/gateway-process.js';
import { tempDir } from '../helpers/tmp.js';

const unitFile = join(ROOT, 'config', 'systemd', 'recrypt.service');
const unit = readFileSync(unitFile, 'utf8');

function directives(section: string): Map<string, string[]> {
  const body = new RegExp(`^\\[${section}\\]\\n([\\s\\S]*?)(?=^\\[|(?![\\s\\S]))`, 'm').exec(
    unit,
  )?.[1];
  const found = new Map<string, string[]>();
  for (const line of (body ?? '').split('\n')) {
    const match = /^(\w+)=(.*)$/.exec(line);
    if (match) found.set(match[1]!, [...(found.get(match[1]!) ?? []), match[2]!]);
  }
  return found;
}

describe('the systemd unit', () => {
  const service = directives('Service');

  it('passes systemd-analyze verify (with ExecStart pointing at an installed binary)', () => {
    const analyze = requireBinary('systemd-analyze');
    const dir = tempDir('recrypt-systemd-');
    try {
      // verify checks that ExecStart's binary exists; here the tool is not installed
      // globally, so the copy starts node instead, with the same arguments.
      const copy = join(dir.path, 'recrypt.service');
      writeFileSync(copy, unit.replace('/usr/local/bin/recrypt', process.execPath));
      const result = spawnSync(analyze, ['verify', copy], { encoding: 'utf8' });
      expect(result.stderr).toBe('');
      expect(result.status).toBe(0);
      // The checker does reject a broken unit: an unknown directive is reported.
      writeFileSync(copy, unit.replace('[Service]\n', '[Service]\nNoSuchDirective=1\n'));
      const broken = spawnSync(analyze, ['verify', copy], { encoding: 'utf8' });
      expect(broken.stderr).toContain("Unknown key 'NoSuchDirective'");
    } finally {
      dir.remove();
    }
  });

  it('runs `recrypt start`, reloads with SIGHUP and waits out the drain', () => {
    expect(service.get('ExecStart')?.[0]).toMatch(/\/recrypt start --config \S+\.yaml$/);
    expect(service.get('ExecReload')).toEqual(['/bin/kill -HUP $MAINPID']);
    expect(service.get('KillSignal')).toEqual(['SIGTERM']);
    // SMTP transactions in flight get 60 s (src/smtp/mx-server.ts closeTimeout).
    expect(Number(service.get('TimeoutStopSec')?.[0])).toBeGreaterThan(60);
  });

  it('binds 25/143/993 without root, in a sandbox with only its state directory writable', () => {
    expect(service.get('AmbientCapabilities')).toEqual(['CAP_NET_BIND_SERVICE']);
    expect(service.get('CapabilityBoundingSet')).toEqual(['CAP_NET_BIND_SERVICE']);
    expect(service.get('NoNewPrivileges')).toEqual(['yes']);
    expect(service.get('ProtectSystem')).toEqual(['strict']);
    expect(service.get('DynamicUser')).toEqual(['yes']);
    expect(service.get('StateDirectory')).toEqual(['recrypt']);
    expect(service.get('StateDirectoryMode')).toEqual(['0700']);
    expect(service.get('UMask')).toEqual(['0077']);
    expect(service.get('Environment')).toContain('RECRYPT_DATA_DIR=/var/lib/recrypt');
  });
});
