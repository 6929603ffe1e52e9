/**
 * A message near smtp.maxMessageBytes through the MX into the embedded store's LMTP on a
 * Unix socket (as the gateway runs it), encrypted while it is sent (streamMessage, the
 * LMTP client pulling piece by piece): the stored copy decrypts with `openssl cms` to the
 * trace headers plus every byte as sent. And fail closed with a stream: an encryption that
 * fails after part of the copy went to the store, or a stream whose header section is not
 * S/MIME, leaves nothing stored and answers 451.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type KeyStore, GatewayKey, openKeyStore } from '../../src/keystore/index.js';
import { recipientIdOf } from '../../src/recrypt/index.js';
import type { MailStore } from '../../src/store/backend.js';
import { type LmtpServerHandle, startLmtpServer } from '../../src/store/lmtp/index.js';
import { createMaildirStore } from '../../src/store/maildir/index.js';
import { keyStoreDirectory } from '../../src/smtp/adapters/keystore-directory.js';
import { EncryptPool, pooledEncryptor } from '../../src/smtp/adapters/encrypt-pool.js';
import { recryptEncryptor } from '../../src/smtp/adapters/recrypt-encryptor.js';
import { lmtpDelivery } from '../../src/smtp/lmtp-delivery.js';
import { type MxServer, type MxServerOptions, startMxServer } from '../../src/smtp/mx-server.js';
import type { MessageEncryptor, StreamedMessage } from '../../src/smtp/ports.js';
import { storedSizeBound } from '../../src/smtp/stored-size.js';
import { fixtureDnsResolver } from '../helpers/smtp-fixture-dns.js';
import {
  type OpensslGroup,
  makeOpensslGroup,
  opensslDecrypt,
} from '../helpers/smtp-openssl-encryptor.js';
import { SmtpWire } from '../helpers/smtp-wire.js';
import { tempDir } from '../helpers/tmp.js';

const MAX = 50 * 1024 * 1024; // smtp.maxMessageBytes's default
const tmp = tempDir('recrypt-mx-big-');
const socketPath = join(tmp.path, 'lmtp.sock');
const erin = 'erin@gateway.test';
let keyStore: KeyStore;
let store: MailStore;
let lmtp: LmtpServerHandle | undefined;
let group: OpensslGroup;

async function inbox(user: string): Promise<Uint8Array[]> {
  const userStore = await store.openUser(user);
  const mailbox = await userStore.openMailbox('INBOX', { readOnly: true });
  try {
    return await Promise.all(mailbox.records().map((record) => mailbox.read(record.uid)));
  } finally {
    await mailbox.close();
  }
}

async function startMx(encryptor: MessageEncryptor): Promise<MxServer> {
  const options: MxServerOptions = {
    port: 0,
    banner: 'big',
    hostname: 'mx.gateway.test',
    maxSize: MAX,
    localDomains: ['gateway.test'],
    directory: keyStoreDirectory({ keyStore, localDomains: ['gateway.test'] }),
    encryptor,
    delivery: lmtpDelivery({ path: socketPath, timeoutMs: 120_000 }),
    dnsResolver: fixtureDnsResolver(),
  };
  return startMxServer(options);
}

/** `size` bytes of 78-byte text lines, some starting with a dot, after a small header. */
function bigMessage(size: number, messageId: string): Buffer {
  const head = Buffer.from(
    `From: someone@sender.example\r\nTo: ${erin}\r\nSubject: big\r\nMessage-ID: <${messageId}>\r\n\r\n`,
  );
  const body = Buffer.alloc(size - head.length);
  const line = Buffer.from(`${'0123456789'.repeat(7)}abcdef\r\n`);
  const dotted = Buffer.from(`.${'0123456789'.repeat(7)}abcde\r\n`);
  for (let at = 0, n = 0; at < body.length; at += line.length, n++)
    (n % 1000 === 7 ? dotted : line).copy(body, at);
  body.write('\r\n', body.length - 2);
  return Buffer.concat([head, body]);
}

/** One SMTP transaction with SIZE declared (as MTAs send), dot-stuffed; the final reply. */
async function send(port: number, message: Buffer): Promise<string> {
  const wire = await SmtpWire.open(port);
  try {
    expect(await wire.reply(60_000)).toMatch(/^220 /);
    expect(await wire.command('EHLO client.example')).toMatch(/^250/);
    expect(await wire.command(`MAIL FROM:<someone@sender.example> SIZE=${message.length}`)).toMatch(
      /^250/,
    );
    expect(await wire.command(`RCPT TO:<${erin}>`)).toMatch(/^250/);
    expect(await wire.command('DATA')).toMatch(/^354/);
    const stuffed = Buffer.from(message.toString('latin1').replace(/^\./gm, '..'), 'latin1');
    for (let at = 0; at < stuffed.length; at += 1 << 20)
      wire.write(stuffed.subarray(at, at + (1 << 20)));
    wire.write('.\r\n');
    return await wire.reply(600_000);
  } finally {
    wire.close();
  }
}

beforeAll(async () => {
  group = makeOpensslGroup(tmp.path, 'erin');
  keyStore = await openKeyStore(
    { kind: 'sqlite', path: join(tmp.path, 'keys.sqlite') },
    { gatewayKey: GatewayKey.generate() },
  );
  await keyStore.addUser({ address: erin });
  const token = await keyStore.createEnrolmentToken(erin, 60_000);
  await keyStore.enrol(erin, token, {
    ownerCaCertificate: group.certDer,
    groupCertificate: group.certDer,
    groupId: Buffer.from(recipientIdOf(group.certDer)).toString('hex'),
    ownerKeySpki: group.certDer,
  });
  store = await createMaildirStore({
    root: join(tmp.path, 'store'),
    maxMessageSize: storedSizeBound(MAX),
  });
  await store.createUser(erin);
  lmtp = await startLmtpServer({ store, path: socketPath, maxSize: storedSizeBound(MAX) });
});

afterAll(async () => {
  await lmtp?.close();
  await store?.close();
  await (keyStore as { close?: () => Promise<void> | void } | undefined)?.close?.();
  tmp.remove();
});

describe('a message near the size limit, encrypted while it is sent', () => {
  it('45 MiB: stored once, openssl cms decrypts it to the trace headers and every byte sent', async () => {
    const mx = await startMx(recryptEncryptor({ hideSubject: true }));
    try {
      const original = bigMessage(45 * 1024 * 1024, `big.${randomBytes(4).toString('hex')}@x`);
      expect(await send(mx.port, original)).toMatch(/^250 2\.6\.0 /);
      const messages = await inbox(erin);
      expect(messages).toHaveLength(1);
      const stored = Buffer.from(messages[0]!);
      expect(stored.subarray(0, 4096).toString('latin1')).toMatch(
        /\r\nContent-Type: application\/pkcs7-mime; smime-type=enveloped-data;/,
      );
      const content = await opensslDecrypt(stored, group);
      expect(content.toString('latin1', 0, 200)).toMatch(/^Received: from /);
      expect(content.length).toBeGreaterThan(original.length);
      expect(content.subarray(content.length - original.length).equals(original)).toBe(true);
    } finally {
      await mx.close();
    }
  });

  it('encryption failing halfway through the copy: 451 4.3.0, the store keeps nothing', async () => {
    const real = recryptEncryptor();
    let pulled = 0;
    const failing: MessageEncryptor = {
      encryptForGroup: real.encryptForGroup,
      isAlreadyForGroup: real.isAlreadyForGroup,
      streamForGroup(message, certificate) {
        const stream = real.streamForGroup!(message, certificate) as StreamedMessage;
        return {
          byteLength: stream.byteLength,
          head: stream.head,
          *body() {
            for (const piece of stream.body() as Iterable<Uint8Array>) {
              pulled += piece.byteLength;
              // Well past the first pieces, so that the store has had part of the copy.
              if (pulled > 8 * 1024 * 1024) throw new Error('cipher failed');
              yield piece;
            }
          },
        };
      },
    };
    const mx = await startMx(failing);
    try {
      const before = (await inbox(erin)).length;
      const original = bigMessage(20 * 1024 * 1024, `fail.${randomBytes(4).toString('hex')}@x`);
      expect(await send(mx.port, original)).toMatch(/^451 4\.3\.0 /);
      expect(pulled).toBeGreaterThan(8 * 1024 * 1024);
      expect(await inbox(erin)).toHaveLength(before);
    } finally {
      await mx.close();
    }
  });

  it('a stream whose header section is not S/MIME is refused before anything is sent: 451', async () => {
    const real = recryptEncryptor();
    let pulled = false;
    const plaintext: MessageEncryptor = {
      encryptForGroup: real.encryptForGroup,
      isAlreadyForGroup: real.isAlreadyForGroup,
      streamForGroup: (message) => ({
        byteLength: message.byteLength,
        head: message.subarray(0, 0),
        *body() {
          pulled = true;
          yield message;
        },
      }),
    };
    const mx = await startMx(plaintext);
    try {
      const before = (await inbox(erin)).length;
      const original = bigMessage(64 * 1024, `plain.${randomBytes(4).toString('hex')}@x`);
      expect(await send(mx.port, original)).toMatch(/^451 4\.3\.0 /);
      expect(pulled).toBe(false);
      expect(await inbox(erin)).toHaveLength(before);
    } finally {
      await mx.close();
    }
  });
});

describe('encryption on arrival in worker threads (config workers)', () => {
  it('4 messages at once through 2 workers: each stored once and decrypting to what was sent', async () => {
    const pool = new EncryptPool({ size: 2, wrap: { hideSubject: true } });
    const mx = await startMx(pooledEncryptor(recryptEncryptor({ hideSubject: true }), pool));
    try {
      const before = (await inbox(erin)).length;
      const originals = [3, 5, 1, 4].map((mib, i) =>
        bigMessage(mib * 1024 * 1024 + i, `pool.${i}.${randomBytes(4).toString('hex')}@x`),
      );
      const replies = await Promise.all(originals.map((original) => send(mx.port, original)));
      for (const reply of replies) expect(reply).toMatch(/^250 2\.6\.0 /);
      const stored = (await inbox(erin)).slice(before);
      expect(stored).toHaveLength(4);
      const contents = await Promise.all(
        stored.map((message) => opensslDecrypt(Buffer.from(message), group)),
      );
      for (const original of originals) {
        const match = contents.filter((content) =>
          content.subarray(content.length - original.length).equals(original),
        );
        expect(match).toHaveLength(1);
      }
    } finally {
      await mx.close();
      await pool.close();
    }
  });

  it('a whole copy (a list post) is made in the pool, not by the inner encryptor on the event loop', async () => {
    const pool = new EncryptPool({ size: 1 });
    const inner = recryptEncryptor();
    const encryptor = pooledEncryptor(
      {
        ...inner,
        encryptForGroup: () => {
          throw new Error('the inner encryptor must not make whole copies');
        },
      },
      pool,
    );
    try {
      // A plain Buffer, as a list post is (not the collector's SharedArrayBuffer).
      const original = bigMessage(3 * 1024 * 1024 + 5, `whole.${randomBytes(4).toString('hex')}@x`);
      const copy = await encryptor.encryptForGroup(original, group.certDer);
      expect(Buffer.from(copy.subarray(0, 4096)).toString('latin1')).toMatch(
        /^content-type:[ \t]*application\/(x-)?pkcs7-mime/im,
      );
      const content = await opensslDecrypt(copy, group);
      expect(content.subarray(content.length - original.length).equals(original)).toBe(true);
      await expect(
        encryptor.encryptForGroup(original, new Uint8Array([1, 2, 3])),
      ).rejects.toThrow();
    } finally {
      await pool.close();
    }
  });

  it('a worker that dies mid-copy, and a certificate it cannot use: 451, nothing stored, the pool goes on', async () => {
    const pool = new EncryptPool({ size: 1 });
    const real = recryptEncryptor();
    let killed = false;
    const pooled = pooledEncryptor(real, pool);
    const dying: MessageEncryptor = {
      ...pooled,
      async streamForGroup(message, certificate) {
        const stream = await pooled.streamForGroup!(message, certificate);
        return {
          ...stream,
          async *body() {
            let pulled = 0;
            for await (const piece of stream.body()) {
              pulled += piece.byteLength;
              if (!killed && pulled > 2 * 1024 * 1024) {
                killed = true;
                // The worker thread itself goes away, as on a crash.
                const slots = (
                  pool as unknown as { slots: { worker: { terminate(): Promise<number> } }[] }
                ).slots;
                await Promise.all([...slots].map((slot) => slot.worker.terminate()));
              }
              yield piece;
            }
          },
        };
      },
    };
    const mx = await startMx(dying);
    try {
      const before = (await inbox(erin)).length;
      const message = bigMessage(8 * 1024 * 1024, `dies.${randomBytes(4).toString('hex')}@x`);
      expect(await send(mx.port, message)).toMatch(/^451 4\.3\.0 /);
      expect(killed).toBe(true);
      expect((await inbox(erin)).length).toBe(before);
      // A certificate the worker cannot read: refused before anything is sent.
      await expect(
        pool.stream(Buffer.from('Subject: x\r\n\r\nx\r\n'), Buffer.from('not a certificate')),
      ).rejects.toThrow();
      // The pool starts a new worker for the next message.
      expect(
        await send(mx.port, bigMessage(1024 * 1024, `after.${randomBytes(4).toString('hex')}@x`)),
      ).toMatch(/^250 2\.6\.0 /);
      expect((await inbox(erin)).length).toBe(before + 1);
    } finally {
      await mx.close();
      await pool.close();
    }
  });
});
