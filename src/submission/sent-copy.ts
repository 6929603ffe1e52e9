/**
 * The Sent copy (docs/sending.md "Sent copy"): the envelope submission made (it names the
 * sender's group too) is APPENDed, \Seen, to the sender's mailbox with the SPECIAL-USE
 * (RFC 6154) \Sent attribute, as the user through the mail store's master credential —
 * the way the proxy logs in upstream. A store without such a mailbox gets "Sent" created.
 * The copy is ciphertext; every device reads it recrypted through the proxy.
 */
import { UpstreamConnection, quoteMailbox, type UpstreamOptions } from '../imap/upstream.js';

export interface SentCopyTarget {
  upstream: UpstreamOptions;
  master: { user: string; password: string };
}

export interface SentCopies {
  /** Stores `message` in `user`'s Sent mailbox; throws when the store did not say OK. */
  store(user: string, message: Uint8Array): Promise<void>;
}

const LIST_LINE = /^\* LIST \(([^)]*)\) (?:"(?:[^"\\]|\\.)*"|NIL) (.+)$/i;

/** The mailbox name of a LIST line's last field, quoted or atom; null for a literal. */
function mailboxOf(field: string): string | null {
  if (field.startsWith('"')) return field.slice(1, -1).replace(/\\(.)/g, '$1');
  return field.startsWith('{') ? null : field;
}

export function sentCopies(target: SentCopyTarget): SentCopies {
  return {
    async store(user, message) {
      const connection = await UpstreamConnection.open(target.upstream, target.master, user);
      try {
        if (!connection.capabilities.some((c) => c.toUpperCase() === 'LITERAL+'))
          throw new Error('the mail store does not offer LITERAL+');
        const listed = await connection.command('LIST "" "*"');
        let sent: string | null = null;
        for (const response of listed.untagged) {
          const match = LIST_LINE.exec(response.text);
          if (match === null || !/\\Sent\b/i.test(match[1]!)) continue;
          sent = mailboxOf(match[2]!);
          if (sent !== null) break;
        }
        if (sent === null) {
          sent = 'Sent';
          // Fails harmlessly when it exists without the attribute: the APPEND still works.
          await connection.command('CREATE "Sent"');
        }
        const quoted = quoteMailbox(sent);
        if (quoted === null) throw new Error('the Sent mailbox name cannot be quoted');
        // The APPEND goes out with a non-synchronising literal (RFC 7888) under its own
        // tag; a NOOP after it collects its tagged answer among the untagged ones.
        const tag = 'sent1';
        connection.socket.write(`${tag} APPEND ${quoted} (\\Seen) {${message.byteLength}+}\r\n`);
        connection.socket.write(message);
        connection.socket.write('\r\n');
        const after = await connection.command('NOOP');
        const answer = after.untagged.find((r) => r.text.startsWith(`${tag} `));
        if (answer === undefined || !/^sent1 OK\b/i.test(answer.text))
          throw new Error(
            `the store refused the Sent copy: ${answer?.text.slice(0, 200) ?? 'no answer'}`,
          );
      } finally {
        connection.close();
      }
    },
  };
}
