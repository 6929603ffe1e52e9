/** What `recrypt bridge` prints once it runs: the settings to type into a mail client. */
import type { RunningBridge } from './bridge.js';

export function clientSettings(bridge: RunningBridge): string {
  const lines = [
    `bridge running for ${bridge.account.address}`,
    'mail client settings (incoming, IMAP):',
    `  server: ${bridge.host}`,
    bridge.certFile === null
      ? `  port: ${bridge.imapPort} (no TLS; loopback only)`
      : `  port: ${bridge.imapPort} with STARTTLS, or ${bridge.imapsPort ?? '-'} with SSL/TLS`,
    `  username: ${bridge.account.address}`,
    bridge.newAccount
      ? `  password (shown once): ${bridge.account.localPassword}`
      : '  password: the one shown at the first start',
  ];
  if (bridge.smtpPort !== null)
    lines.push(
      'outgoing (SMTP):',
      `  server: ${bridge.host}`,
      `  port: ${bridge.smtpPort}${bridge.certFile === null ? ' (no TLS; loopback only)' : ' with STARTTLS'}`,
      '  username and password: as for incoming',
    );
  if (bridge.certFile !== null) lines.push(`  certificate to trust: ${bridge.certFile}`);
  lines.push('stop with Ctrl-C');
  return lines.join('\n') + '\n';
}
