/**
 * The gateway's own short mails to people (list confirmations, moderation and departure
 * notices). Composed by nodemailer's MailComposer, marked `Auto-Submitted: auto-generated`
 * (RFC 3834) so that no auto-responder answers them. A user of this gateway gets the
 * notice like any other mail: encrypted on arrival to their group and stored over LMTP,
 * before `send` resolves. Anyone else gets it through the outbound queue, with the null
 * sender (a notice must not bounce back to the gateway), encrypted to their certificate
 * when the caller knows it (a remote list member).
 */
import { randomBytes } from 'node:crypto';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import type { Logger } from 'pino';
import type { KeyStore, User } from '../keystore/index.js';
import type { OutboundQueue } from '../outbound/types.js';
import { wrapMessage } from '../recrypt/index.js';
import type { DeliveryTarget } from '../smtp/ports.js';
import { replies } from '../smtp/reply.js';
import type { Notice, NoticeSender } from './ports.js';

export interface NoticeSenderOptions {
  keyStore: KeyStore;
  delivery: DeliveryTarget;
  queue: OutboundQueue;
  /** Our host name, for Message-ID. */
  hostname: string;
  mailboxOf?: (user: User) => string;
  logger: Logger;
}

export function composeNotice(notice: Notice, hostname: string): Promise<Buffer> {
  const composer = new MailComposer({
    from: notice.from,
    to: notice.to,
    subject: notice.subject,
    text: notice.text,
    headers: { 'Auto-Submitted': 'auto-generated', ...notice.headers },
    messageId: `<${randomBytes(12).toString('hex')}@${hostname}>`,
  });
  return new Promise((resolve, reject) =>
    composer.compile().build((error, message) => (error ? reject(error) : resolve(message))),
  );
}

export function noticeSender(options: NoticeSenderOptions): NoticeSender {
  const mailboxOf = options.mailboxOf ?? ((user: User) => user.address.toLowerCase());
  return {
    async send(notice): Promise<void> {
      const message = await composeNotice(notice, options.hostname);
      const user = await options.keyStore.getUser(notice.to);
      if (user === null) {
        const sealed =
          notice.encryptTo === undefined ? message : wrapMessage(message, notice.encryptTo);
        await options.queue.enqueue([
          { mailFrom: '', to: notice.to, message: sealed, origin: { kind: 'notice' } },
        ]);
        return;
      }
      if (user.owner === null) {
        // No group certificate yet: it cannot be stored encrypted, and never in plaintext.
        options.logger.info({ to: notice.to }, 'notice not sent: recipient not enrolled');
        return;
      }
      const mailbox = mailboxOf(user);
      const results = await options.delivery.deliver(
        { mailFrom: '', mailboxes: [mailbox] },
        wrapMessage(message, user.owner.groupCertificate),
      );
      const result = results.find((r) => r.mailbox === mailbox);
      if (result?.status !== 'stored') {
        options.logger.warn({ to: notice.to, result }, 'notice not stored');
        throw replies.storeUnavailable();
      }
    },
  };
}
