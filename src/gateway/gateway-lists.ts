/**
 * Lists and the recipients of this gateway (docs/lists.md): posts fan out to local
 * mailboxes and, recrypted, through the outbound queue to remote members; moderated posts
 * wait in the held-post store; notices go out as the list. The directory of users and
 * lists is what the MX checks recipients against, and submission its local recipients.
 */
import type { Logger } from '../config/logger.js';
import type { GatewayConfig } from '../config/schema.js';
import type { GatewayKey, KeyStore } from '../keystore/index.js';
import { noticeSender } from '../lists/notices.js';
import type { HeldPostStore, ListPostDelivery, NoticeSender } from '../lists/ports.js';
import { listPostDelivery, type PostDeliveryOptions } from '../lists/post-delivery.js';
import { keyStoreDirectory } from '../smtp/adapters/index.js';
import type { DeliveryTarget, RecipientDirectory } from '../smtp/ports.js';

export interface GatewayLists {
  postDelivery: ListPostDelivery;
  notices: NoticeSender;
  /** Users and lists of this gateway: the MX's recipients, and submission's local ones. */
  recipientDirectory: RecipientDirectory;
}

export function gatewayLists(options: {
  config: GatewayConfig;
  keyStore: KeyStore;
  gatewayKey: GatewayKey;
  delivery: DeliveryTarget;
  queue: PostDeliveryOptions['queue'];
  held: HeldPostStore;
  publicName: string;
  logger: Logger;
  onCopyStored: NonNullable<PostDeliveryOptions['onCopyStored']>;
}): GatewayLists {
  const { config, keyStore, delivery, queue } = options;
  const listLogger = options.logger.child({ part: 'lists' });
  const postDelivery = listPostDelivery({
    keyStore,
    delivery,
    queue,
    // Each post is also kept in the list address's own mailbox, its archive, which
    // members open through the proxy. The embedded store makes that mailbox itself;
    // Dovecot's userdb must know list addresses (the shipped static one does).
    archive: true,
    logger: listLogger,
    // The members' points at delivery, as for the MX's own copies (docs/design.md §4).
    onCopyStored: options.onCopyStored,
  });
  const notices = noticeSender({
    keyStore,
    delivery,
    queue,
    hostname: config.outbound.heloName ?? options.publicName,
    logger: listLogger,
  });
  const recipientDirectory = keyStoreDirectory({
    keyStore,
    localDomains: config.smtp.localDomains,
    aliases: config.smtp.aliases,
    ...(config.smtp.postmaster !== undefined ? { postmaster: config.smtp.postmaster } : {}),
    lists: {
      delivery: postDelivery,
      held: options.held,
      notices,
      // Not the admin token: rotating that must not void pending confirmations.
      secret: options.gatewayKey.deriveSecret('list-unsubscribe-confirmation'),
    },
    logger: listLogger,
  });
  return { postDelivery, notices, recipientDirectory };
}
