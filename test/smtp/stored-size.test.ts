/**
 * storedSizeBound (stored-size.ts) holds for what the recryption core really makes: the
 * encrypted copy of a message with the MX's trace headers fits under the bound of the
 * message's size, for both content encryptions.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { wrapMessage } from '../../src/recrypt/smime.js';
import { storedSizeBound } from '../../src/smtp/stored-size.js';
import { tempDir } from '../helpers/tmp.js';

function groupCertificate(): Uint8Array {
  const dir = tempDir('recrypt-stored-size-');
  try {
    const key = join(dir.path, 'group.key');
    execFileSync('openssl', [
      'genpkey',
      '-algorithm',
      'EC',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-out',
      key,
    ]);
    return new Uint8Array(
      execFileSync('openssl', [
        'req',
        '-new',
        '-x509',
        '-key',
        key,
        '-days',
        '2',
        '-subj',
        '/CN=g',
        '-outform',
        'DER',
      ]),
    );
  } finally {
    dir.remove();
  }
}

describe('storedSizeBound', () => {
  const certificate = groupCertificate();
  for (const size of [0, 1000, 1 << 20, 5 << 20]) {
    it(`a ${size}-byte message with a full header and trace headers fits`, () => {
      const header = `From: a@b.example\r\nSubject: ${'s'.repeat(90)}\r\n`.repeat(900);
      const trace = 'Received: x\r\n'.repeat(1200);
      const body = randomBytes(size);
      const message = Buffer.concat([Buffer.from(header + '\r\n'), body]);
      const stored = wrapMessage(Buffer.concat([Buffer.from(trace), message]), certificate, {
        contentEncryption: 'aes-256-gcm',
      });
      expect(stored.length).toBeLessThanOrEqual(storedSizeBound(message.length));
    });
  }
});
