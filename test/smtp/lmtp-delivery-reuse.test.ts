/**
 * A streamed copy's pieces may live in memory that is reused once the next piece is
 * pulled (the encryption pool's slots, src/smtp/adapters/encrypt-pool.ts): the LMTP
 * client must have written, or copied, every piece before it pulls the next. Here a
 * stream hands out every piece in one buffer that it overwrites at each pull, with pieces
 * small enough to wait for a fuller batch and large ones, and the embedded store's copy
 * must be byte for byte what was streamed.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MailStore } from '../../src/store/backend.js';
import { type LmtpServerHandle, startLmtpServer } from '../../src/store/lmtp/index.js';
import { createMaildirStore } from '../../src/store/maildir/index.js';
import { lmtpDelivery } from '../../src/smtp/lmtp-delivery.js';
import type { StreamedMessage } from '../../src/smtp/ports.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir('recrypt-lmtp-reuse-');
const socketPath = join(tmp.path, 'lmtp.sock');
const user = 'rita@gateway.test';
let store: MailStore;
let lmtp: LmtpServerHandle | undefined;

beforeAll(async () => {
  store = await createMaildirStore({ root: join(tmp.path, 'store') });
  await store.createUser(user);
  lmtp = await startLmtpServer({ store, path: socketPath });
});

afterAll(async () => {
  await lmtp?.close();
  await store?.close();
  tmp.remove();
});

/** Base64-like CRLF lines (some starting with a dot), `size` bytes. */
function lines(size: number): Buffer {
  const out = Buffer.alloc(size);
  const text = randomBytes(size).toString('base64');
  for (let at = 0, n = 0; at < size; at += 78, n++) {
    const line = `${n % 50 === 3 ? '.' : ''}${text.slice(at, at + 76)}`.slice(0, 76);
    out.write(`${line}\r\n`, at, 'latin1');
  }
  return out.subarray(0, size - (size % 78));
}

describe('LMTP client and a stream that reuses its piece buffer', () => {
  it('small and large pieces, each overwritten at the next pull: stored byte for byte', async () => {
    const head = Buffer.from(
      'From: a@sender.example\r\nTo: rita@gateway.test\r\nSubject: reuse\r\nContent-Type: application/pkcs7-mime\r\n\r\n',
    );
    // Small pieces wait for a fuller batch (64 KiB); the large ones are batches of their own.
    const pieces = [78, 780, 78 * 900, 78, 78 * 4000, 78 * 10, 78 * 3000, 78].map(lines);
    const shared = Buffer.alloc(Math.max(...pieces.map((piece) => piece.length)));
    const stream: StreamedMessage = {
      byteLength: head.length + pieces.reduce((sum, piece) => sum + piece.length, 0),
      head,
      async *body() {
        for (const piece of pieces) {
          piece.copy(shared);
          yield shared.subarray(0, piece.length);
          // The consumer pulled again: what it did not write or copy is gone.
          shared.fill(0x21);
        }
      },
    };
    const results = await lmtpDelivery({ path: socketPath }).deliver(
      { mailFrom: 'a@sender.example', mailboxes: [user] },
      stream,
    );
    expect(results).toEqual([{ mailbox: user, status: 'stored' }]);

    const mailbox = await (await store.openUser(user)).openMailbox('INBOX', { readOnly: true });
    try {
      const [record] = mailbox.records();
      const stored = Buffer.from(await mailbox.read(record!.uid));
      expect(stored.equals(Buffer.concat([head, ...pieces]))).toBe(true);
    } finally {
      await mailbox.close();
    }
  });
});
