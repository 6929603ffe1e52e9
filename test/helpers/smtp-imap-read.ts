/**
 * Reads a mailbox back over IMAP with imapflow, logged in as the user through the
 * store's master credential (SASL PLAIN, authzid = user): every message's raw bytes.
 */
import { ImapFlow } from 'imapflow';

export interface MasterLogin {
  port: number;
  masterUser: string;
  masterPassword: string;
}

export async function fetchAllRaw(login: MasterLogin, user: string): Promise<Buffer[]> {
  const client = new ImapFlow({
    host: '127.0.0.1',
    port: login.port,
    secure: false,
    logger: false,
    auth: {
      user: login.masterUser,
      pass: login.masterPassword,
      authzid: user,
      loginMethod: 'AUTH=PLAIN',
    },
  });
  await client.connect();
  try {
    const lock = await client.getMailboxLock('INBOX');
    try {
      const messages: Buffer[] = [];
      if (client.mailbox === false || client.mailbox.exists === 0) return [];
      for await (const message of client.fetch('1:*', { source: true })) {
        if (message.source !== undefined) messages.push(message.source);
      }
      return messages;
    } finally {
      lock.release();
    }
  } finally {
    await client.logout().catch(() => undefined);
  }
}
