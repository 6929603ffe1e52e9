/**
 * Child process for the kill -9 test: delivers large messages into a Maildir store in a
 * loop and prints `delivered <uid>` after each deliver() resolved (the moment LMTP would
 * answer 250). Every message carries the SHA-256 of its body in a header so a reader can
 * tell a complete message from a torn one. Run: node --import tsx <this> <root> <user>
 */
import { createHash, randomBytes } from 'node:crypto';
import { createMaildirStore } from '../../src/store/maildir/index.js';

const [root, user] = process.argv.slice(2) as [string, string];
const store = await createMaildirStore({ root });
for (let n = 0; ; n++) {
  const size = 256 * 1024 + Math.floor(Math.random() * 2 * 1024 * 1024);
  // base64 lines of 76 characters: an ordinary large attachment body
  const body = `${randomBytes(Math.floor((size * 3) / 4))
    .toString('base64')
    .replace(/.{76}/g, '$&\r\n')}\r\n`;
  const hash = createHash('sha256').update(body).digest('hex');
  const message = Buffer.from(
    `From: loop@example.com\r\nSubject: crash ${n}\r\nX-Body-SHA256: ${hash}\r\n\r\n${body}`,
  );
  const { uid } = await store.deliver(user, message);
  process.stdout.write(`delivered ${uid}\n`);
}
