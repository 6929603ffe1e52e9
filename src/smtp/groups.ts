/**
 * Encrypts and delivers one message to its recipients, one recipient group at a time
 * (recipients that share a group certificate share one encrypted copy and one LMTP
 * transaction), and decides the single SMTP reply. Sequential on purpose: at most one
 * encrypted copy is alive next to the original, whatever the number of recipients.
 *
 * Fail closed: a copy reaches the store only as the encryptor's output (checked to be
 * S/MIME) or, when the message already is an envelope for the group, byte-identical. A
 * streamed copy's header section is checked before anything is sent, and a failure
 * while it is encrypted abandons it before the store's end of data (nothing stored).
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { MxMetrics } from './metrics.js';
import type {
  DeliveryResult,
  DeliveryTarget,
  MessageEncryptor,
  OutgoingMessage,
  StoredCopy,
  StreamedMessage,
} from './ports.js';
import { SmtpReply, replies } from './reply.js';

export interface LocalRecipient {
  address: string;
  mailbox: string;
  groupCertificate: Uint8Array;
  /** Groups the mailbox had before a rotation: mail already for one passes through. */
  formerGroupCertificates?: Uint8Array[];
  /** The key store's user (for `onCopyStored`). */
  owner?: string;
}

export interface GroupDeliveryDeps {
  encryptor: MessageEncryptor;
  delivery: DeliveryTarget;
  logger: Logger;
  metrics: MxMetrics;
  /** Told of each copy the store took (mx-server.ts `onCopyStored`). */
  onCopyStored?(copy: StoredCopy): void;
}

export interface GroupDeliveryInput {
  /** Trace headers + original: what is encrypted. */
  withTrace: Uint8Array;
  /** The original as received (a view into withTrace): what is checked and passed through. */
  original: Uint8Array;
  mailFrom: string;
  recipients: LocalRecipient[];
}

interface Group {
  certificate: Uint8Array;
  former: Uint8Array[];
  mailboxes: string[];
  /** Key store users per mailbox (recipients without one are left out). */
  owners: Map<string, string>;
}

function groupsOf(recipients: LocalRecipient[]): Group[] {
  const groups = new Map<string, Group>();
  for (const recipient of recipients) {
    const key = createHash('sha256').update(recipient.groupCertificate).digest('hex');
    const group = groups.get(key) ?? {
      certificate: recipient.groupCertificate,
      former: recipient.formerGroupCertificates ?? [],
      mailboxes: [],
      owners: new Map<string, string>(),
    };
    if (!group.mailboxes.includes(recipient.mailbox)) group.mailboxes.push(recipient.mailbox);
    if (recipient.owner !== undefined) group.owners.set(recipient.mailbox, recipient.owner);
    groups.set(key, group);
  }
  return [...groups.values()];
}

const SMIME_TYPE = /^content-type:[ \t]*application\/(x-)?pkcs7-mime/im;

/** The encryptor's output must be an S/MIME message; anything else is refused, never stored. */
function looksLikeSmime(message: Uint8Array): boolean {
  const head = Buffer.from(
    message.buffer,
    message.byteOffset,
    Math.min(message.byteLength, 65_536),
  );
  const end = head.indexOf('\r\n\r\n');
  return SMIME_TYPE.test(head.subarray(0, end === -1 ? head.length : end).toString('latin1'));
}

async function isAlreadyForGroup(
  deps: Pick<GroupDeliveryDeps, 'encryptor' | 'logger'>,
  original: Uint8Array,
  certificate: Uint8Array,
): Promise<boolean> {
  try {
    return await deps.encryptor.isAlreadyForGroup(original, certificate);
  } catch (error) {
    // Unsure means encrypt: an envelope inside an envelope is still readable, plaintext never is.
    deps.logger.warn({ err: { name: (error as Error).name } }, 'envelope check failed; encrypting');
    return false;
  }
}

/**
 * The copy stored for one group: the encryptor's output (checked to be S/MIME), or the
 * original when it already is an envelope for the group. Throws the 451 to answer.
 */
export async function encryptedCopy(
  deps: Pick<GroupDeliveryDeps, 'encryptor' | 'logger'>,
  input: Pick<GroupDeliveryInput, 'withTrace' | 'original'>,
  certificate: Uint8Array,
  logContext: Record<string, unknown>,
): Promise<{ payload: Uint8Array; passThrough: boolean }> {
  if (await isAlreadyForGroup(deps, input.original, certificate)) {
    return { payload: input.original, passThrough: true };
  }
  let payload: Uint8Array;
  try {
    payload = await deps.encryptor.encryptForGroup(input.withTrace, certificate);
  } catch (error) {
    const { name, message } = error as Error;
    deps.logger.error(
      { err: { name, message: String(message).slice(0, 200) }, ...logContext },
      'encryption failed; answering 451',
    );
    throw replies.localError();
  }
  if (!(payload instanceof Uint8Array) || !looksLikeSmime(payload)) {
    deps.logger.error(logContext, 'encryptor returned something that is not S/MIME; answering 451');
    throw replies.localError();
  }
  return { payload, passThrough: false };
}

/** Thrown out of a stream's body() by `checkedStream`: the encryption failed, not the store. */
class EncryptionFailed extends Error {
  override readonly name = 'EncryptionFailed';
}

/**
 * The encryptor's stream as the LMTP client pulls it: its pieces are counted against the
 * announced length, and a failure while encrypting is logged as such and surfaces as
 * EncryptionFailed (the LMTP client then abandons the copy before its end of data).
 */
function checkedStream(
  stream: StreamedMessage,
  logger: Logger,
  logContext: Record<string, unknown>,
): StreamedMessage {
  const fail = (error: unknown): EncryptionFailed => {
    const { name, message } = error as Error;
    logger.error(
      { err: { name, message: String(message).slice(0, 200) }, ...logContext },
      'encryption failed while sending; answering 451',
    );
    return new EncryptionFailed();
  };
  return {
    byteLength: stream.byteLength,
    head: stream.head,
    ...(stream.abandon === undefined ? {} : { abandon: () => stream.abandon?.() }),
    async *body() {
      let sent = stream.head.byteLength;
      try {
        for await (const piece of stream.body()) {
          sent += piece.byteLength;
          if (sent > stream.byteLength) throw new Error('stream longer than announced');
          yield piece;
        }
      } catch (error) {
        throw fail(error);
      }
      if (sent !== stream.byteLength) throw fail(new Error('stream shorter than announced'));
    },
  };
}

/**
 * The copy for one group of recipients: like `encryptedCopy`, but streamed when the
 * encryptor can (the LMTP client encrypts as it sends; nothing is held twice).
 */
async function recipientCopy(
  deps: Pick<GroupDeliveryDeps, 'encryptor' | 'logger'>,
  input: Pick<GroupDeliveryInput, 'withTrace' | 'original'>,
  certificate: Uint8Array,
  logContext: Record<string, unknown>,
  former: Uint8Array[] = [],
): Promise<{ payload: OutgoingMessage; passThrough: boolean }> {
  const { encryptor } = deps;
  // Encrypted by its sender to a group the mailbox had before a rotation (an older
  // profile): stored as it is, the devices hold keys for that group too.
  for (const old of former)
    if (await isAlreadyForGroup(deps, input.original, old))
      return { payload: input.original, passThrough: true };
  if (encryptor.streamForGroup === undefined)
    return encryptedCopy(deps, input, certificate, logContext);
  if (await isAlreadyForGroup(deps, input.original, certificate)) {
    return { payload: input.original, passThrough: true };
  }
  let stream: StreamedMessage;
  try {
    stream = await encryptor.streamForGroup(input.withTrace, certificate);
  } catch (error) {
    const { name, message } = error as Error;
    deps.logger.error(
      { err: { name, message: String(message).slice(0, 200) }, ...logContext },
      'encryption failed; answering 451',
    );
    throw replies.localError();
  }
  if (!(stream.head instanceof Uint8Array) || !looksLikeSmime(stream.head)) {
    deps.logger.error(logContext, 'encryptor returned something that is not S/MIME; answering 451');
    throw replies.localError();
  }
  return { payload: checkedStream(stream, deps.logger, logContext), passThrough: false };
}

/** Header section bytes kept for `onCopyStored` (the MX's own outer headers are short). */
const TAP_HEAD_BYTES = 64 * 1024;
/** Body bytes kept: the base64 of the CMS prefix (a few hundred DER bytes) with room. */
const TAP_BODY_BYTES = 8 * 1024;

/**
 * The copy as sent, and a function giving a copy of its first bytes afterwards (its
 * buffers may be reused): the streamed copy's head and first body pieces as they pass.
 */
function tapped(payload: OutgoingMessage): { payload: OutgoingMessage; prefix: () => Uint8Array } {
  if (payload instanceof Uint8Array) {
    const end = Math.min(payload.byteLength, TAP_HEAD_BYTES + TAP_BODY_BYTES);
    return { payload, prefix: () => Buffer.from(payload.subarray(0, end)) };
  }
  const pieces: Uint8Array[] = [Buffer.from(payload.head.subarray(0, TAP_HEAD_BYTES))];
  let held = 0;
  const stream: StreamedMessage = {
    byteLength: payload.byteLength,
    head: payload.head,
    ...(payload.abandon === undefined ? {} : { abandon: () => payload.abandon?.() }),
    async *body() {
      for await (const piece of payload.body()) {
        if (held < TAP_BODY_BYTES) {
          // Copied now: a piece's buffer may be reused once the next is pulled (ports.ts).
          const part = Buffer.from(piece.subarray(0, TAP_BODY_BYTES - held));
          pieces.push(part);
          held += part.byteLength;
        }
        yield piece;
      }
    },
  };
  return { payload: stream, prefix: () => Buffer.concat(pieces) };
}

/** Tells `deps.onCopyStored` of a copy stored for these mailboxes; never fails the delivery. */
function reportStored(
  deps: GroupDeliveryDeps,
  group: Group,
  stored: string[],
  prefix: () => Uint8Array,
): void {
  if (deps.onCopyStored === undefined) return;
  const owners = stored.flatMap((mailbox) => group.owners.get(mailbox) ?? []);
  if (owners.length === 0) return;
  try {
    deps.onCopyStored({ owners, prefix: prefix() });
  } catch (error) {
    deps.logger.warn({ err: { name: (error as Error).name } }, 'after-store hook failed');
  }
}

/** Resolves when every recipient's copy is stored; throws the SmtpReply to answer otherwise. */
export async function deliverToGroups(
  deps: GroupDeliveryDeps,
  input: GroupDeliveryInput,
): Promise<{ encrypted: number; passedThrough: number }> {
  const results: DeliveryResult[] = [];
  let encrypted = 0;
  let passedThrough = 0;
  for (const group of groupsOf(input.recipients)) {
    const copy = await recipientCopy(
      deps,
      input,
      group.certificate,
      { mailboxes: group.mailboxes },
      group.former,
    );
    const { passThrough } = copy;
    const { payload, prefix } =
      deps.onCopyStored === undefined
        ? { payload: copy.payload, prefix: () => new Uint8Array(0) }
        : tapped(copy.payload);
    let groupResults: DeliveryResult[];
    try {
      const answered = await deps.delivery.deliver(
        { mailFrom: input.mailFrom, mailboxes: group.mailboxes },
        payload,
      );
      // A mailbox the target said nothing about is not known to be stored.
      groupResults = group.mailboxes.map(
        (mailbox): DeliveryResult =>
          answered.find((result) => result.mailbox === mailbox) ?? {
            mailbox,
            status: 'temp-failed',
            response: 'no result',
          },
      );
    } catch (error) {
      if (error instanceof EncryptionFailed) throw replies.localError();
      deps.logger.warn(
        {
          err: { name: (error as Error).name, message: (error as Error).message },
          mailboxes: group.mailboxes,
        },
        'store unavailable',
      );
      groupResults = group.mailboxes.map((mailbox) => ({
        mailbox,
        status: 'temp-failed',
        response: 'no answer',
      }));
    } finally {
      // A copy the store never took whole (refused at RCPT or DATA, failed): stop making it.
      if (!(payload instanceof Uint8Array)) payload.abandon?.();
    }
    for (const result of groupResults) {
      if (result.status === 'stored')
        deps.metrics.copies.inc({ kind: passThrough ? 'passed_through' : 'encrypted' });
    }
    reportStored(
      deps,
      group,
      groupResults.filter((result) => result.status === 'stored').map((result) => result.mailbox),
      prefix,
    );
    if (passThrough) passedThrough += 1;
    else encrypted += 1;
    results.push(...groupResults);
    deps.logger.info(
      {
        mailboxes: group.mailboxes,
        kind: passThrough ? 'passed-through' : 'encrypted',
        bytes: payload.byteLength,
        results: groupResults,
      },
      'group delivery',
    );
    // The sender will retry the whole message: delivering the remaining groups now would
    // only add duplicates.
    if (groupResults.some((result) => result.status === 'temp-failed'))
      throw replies.storeUnavailable();
  }
  const rejected = results.filter((result) => result.status === 'rejected');
  if (rejected.length > 0) {
    // Documented in README.md ("Permanent failures after DATA"): the stored copies stay,
    // the sender is told permanently so that its bounce names the failure; no silent loss.
    throw new SmtpReply(
      554,
      '5.2.0',
      `Delivery failed permanently for ${rejected.length} of ${results.length} recipients; the others have the message`,
    );
  }
  return { encrypted, passedThrough };
}
