/** `recrypt read`: decrypt an S/MIME message with a device's .p12 (debugging; never touches the gateway). */
import { readFileSync } from 'node:fs';
import { RecryptError, decryptMessage, readPkcs12, recipientIdOf } from '../recrypt/index.js';
import { OwnerError } from './errors.js';

const MAX_MESSAGE_BYTES = 256 * 1024 * 1024;

function readInput(path: string, what: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (error) {
    throw new OwnerError(
      'io',
      `cannot read the ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
}

export async function readMessage(options: {
  messageFile: string;
  p12File: string;
  p12Password: string;
}): Promise<Uint8Array> {
  const message = readInput(options.messageFile, 'message');
  if (message.length > MAX_MESSAGE_BYTES)
    throw new OwnerError('invalid-argument', `${options.messageFile} is larger than 256 MiB`);
  const p12 = readInput(options.p12File, '.p12 file');
  let device;
  try {
    device = await readPkcs12(p12, options.p12Password);
  } catch (error) {
    if (error instanceof RecryptError && error.code === 'bad-password') {
      throw new OwnerError('bad-passphrase', `wrong password for ${options.p12File}`);
    }
    throw new OwnerError('invalid-argument', `${options.p12File}: ${(error as Error).message}`);
  }
  try {
    return decryptMessage(message, {
      secret: device.deviceSecret,
      recipientId: recipientIdOf(device.certificate),
    });
  } catch (error) {
    if (error instanceof RecryptError) {
      throw new OwnerError(
        'invalid-argument',
        `cannot decrypt ${options.messageFile} with this device key: ${error.message}`,
      );
    }
    throw error;
  }
}
