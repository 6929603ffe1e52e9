/**
 * Files a mail client can import for the bridge's local account (docs/bridge.md): a
 * Thunderbird autoconfig file (the `clientConfig` format of Thunderbird's ISPDB) and an
 * Apple configuration profile (`.mobileconfig`: a Mail account payload, plus the bridge's
 * certificate as a trusted root when TLS is on). Neither holds a password: the client
 * asks for the local password once.
 */
import { createHash, X509Certificate } from 'node:crypto';
import type { RunningBridge } from './bridge.js';

function xml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

/** A stable UUID-shaped id from text, so that importing the profile again replaces it. */
function uuidOf(text: string): string {
  const h = createHash('sha256').update(text, 'utf8').digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`.toUpperCase();
}

export function thunderbirdAutoconfig(bridge: RunningBridge): string {
  const address = xml(bridge.account.address);
  const tls = bridge.certFile !== null;
  const incoming =
    tls && bridge.imapsPort !== null
      ? { port: bridge.imapsPort, socket: 'SSL' }
      : { port: bridge.imapPort, socket: tls ? 'STARTTLS' : 'plain' };
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<clientConfig version="1.1">',
    `  <emailProvider id="recrypt-bridge.localhost">`,
    `    <domain>${xml(bridge.account.address.split('@')[1] ?? 'localhost')}</domain>`,
    `    <displayName>${address} (recrypt bridge)</displayName>`,
    `    <displayShortName>recrypt bridge</displayShortName>`,
    '    <incomingServer type="imap">',
    `      <hostname>${xml(bridge.host)}</hostname>`,
    `      <port>${incoming.port}</port>`,
    `      <socketType>${incoming.socket}</socketType>`,
    `      <username>${address}</username>`,
    '      <authentication>password-cleartext</authentication>',
    '    </incomingServer>',
  ];
  if (bridge.smtpPort !== null)
    lines.push(
      '    <outgoingServer type="smtp">',
      `      <hostname>${xml(bridge.host)}</hostname>`,
      `      <port>${bridge.smtpPort}</port>`,
      `      <socketType>${tls ? 'STARTTLS' : 'plain'}</socketType>`,
      `      <username>${address}</username>`,
      '      <authentication>password-cleartext</authentication>',
      '    </outgoingServer>',
    );
  lines.push('  </emailProvider>', '</clientConfig>');
  return lines.join('\n') + '\n';
}

function plistValue(value: string | number | boolean): string {
  if (typeof value === 'boolean') return value ? '<true/>' : '<false/>';
  if (typeof value === 'number') return `<integer>${value}</integer>`;
  return `<string>${xml(value)}</string>`;
}

function plistDict(entries: Array<[string, string | number | boolean]>, indent: string): string {
  return entries
    .map(([key, value]) => `${indent}<key>${xml(key)}</key>${plistValue(value)}`)
    .join('\n');
}

export function appleMobileconfig(bridge: RunningBridge, certPem: string | null): string {
  const address = bridge.account.address;
  const tls = bridge.certFile !== null && certPem !== null;
  const base = `recrypt-bridge.${address}`;
  const mail: Array<[string, string | number | boolean]> = [
    ['PayloadType', 'com.apple.mail.managed'],
    ['PayloadVersion', 1],
    ['PayloadIdentifier', `${base}.mail`],
    ['PayloadUUID', uuidOf(`${base}.mail`)],
    ['PayloadDisplayName', `${address} (recrypt bridge)`],
    ['EmailAccountDescription', `${address} (recrypt bridge)`],
    ['EmailAccountType', 'EmailTypeIMAP'],
    ['EmailAddress', address],
    ['IncomingMailServerHostName', bridge.host],
    [
      'IncomingMailServerPortNumber',
      tls && bridge.imapsPort !== null ? bridge.imapsPort : bridge.imapPort,
    ],
    ['IncomingMailServerUseSSL', tls && bridge.imapsPort !== null],
    ['IncomingMailServerAuthentication', 'EmailAuthPassword'],
    ['IncomingMailServerUsername', address],
  ];
  if (bridge.smtpPort !== null)
    mail.push(
      ['OutgoingMailServerHostName', bridge.host],
      ['OutgoingMailServerPortNumber', bridge.smtpPort],
      ['OutgoingMailServerUseSSL', tls],
      ['OutgoingMailServerAuthentication', 'EmailAuthPassword'],
      ['OutgoingMailServerUsername', address],
      ['OutgoingPasswordSameAsIncomingPassword', true],
    );
  const payloads = [`    <dict>\n${plistDict(mail, '      ')}\n    </dict>`];
  if (tls) {
    const der = new X509Certificate(certPem).raw.toString('base64');
    const root: Array<[string, string | number | boolean]> = [
      ['PayloadType', 'com.apple.security.root'],
      ['PayloadVersion', 1],
      ['PayloadIdentifier', `${base}.certificate`],
      ['PayloadUUID', uuidOf(`${base}.certificate.${der}`)],
      ['PayloadDisplayName', 'recrypt bridge local certificate'],
      ['PayloadCertificateFileName', 'recrypt-bridge.cer'],
    ];
    payloads.push(
      `    <dict>\n${plistDict(root, '      ')}\n      <key>PayloadContent</key><data>${der}</data>\n    </dict>`,
    );
  }
  const top: Array<[string, string | number | boolean]> = [
    ['PayloadType', 'Configuration'],
    ['PayloadVersion', 1],
    ['PayloadIdentifier', base],
    ['PayloadUUID', uuidOf(base)],
    ['PayloadDisplayName', `recrypt bridge: ${address}`],
    ['PayloadDescription', 'The mail account served by recrypt bridge on this computer'],
  ];
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<plist version="1.0">',
    '  <dict>',
    plistDict(top, '    '),
    '    <key>PayloadContent</key>',
    '    <array>',
    ...payloads,
    '    </array>',
    '  </dict>',
    '</plist>',
    '',
  ].join('\n');
}
