import type { Wire } from './store-imap.js';

/** A message for the SEARCH / SORT / THREAD tests, built so that every sort key differs somewhere. */
export interface TestMail {
  from: string;
  to?: string;
  cc?: string;
  subject: string;
  /** Date header; null leaves it out (the sent date is then INTERNALDATE, RFC 5256). */
  date: string | null;
  messageId?: string;
  inReplyTo?: string;
  references?: string;
  /** INTERNALDATE as APPEND's date-time. */
  internal: string;
  flags?: string;
  /** Extra body lines, to make sizes differ. */
  padding?: number;
}

export function mailText(m: TestMail): string {
  const lines = [`From: ${m.from}`, `To: ${m.to ?? 'alice@example.org'}`];
  if (m.cc !== undefined) lines.push(`Cc: ${m.cc}`);
  lines.push(`Subject: ${m.subject}`);
  if (m.date !== null) lines.push(`Date: ${m.date}`);
  if (m.messageId !== undefined) lines.push(`Message-ID: ${m.messageId}`);
  if (m.inReplyTo !== undefined) lines.push(`In-Reply-To: ${m.inReplyTo}`);
  if (m.references !== undefined) lines.push(`References: ${m.references}`);
  lines.push('', 'body', ...Array.from({ length: m.padding ?? 0 }, (_, i) => `line ${i}`), '');
  return lines.join('\r\n');
}

/** APPENDs each message with its flags and INTERNALDATE (LITERAL+, which both servers offer). */
export async function appendAll(w: Wire, mailbox: string, mails: TestMail[]): Promise<void> {
  let n = 0;
  for (const m of mails) {
    const text = mailText(m);
    const reply = await w.command(
      `ap${n++}`,
      `APPEND ${mailbox} (${m.flags ?? ''}) "${m.internal}" {${Buffer.byteLength(text)}+}\r\n${text}`,
    );
    if (!/ OK /.test(reply)) throw new Error(`APPEND failed: ${reply}`);
  }
}

/** The untagged lines of a reply, without the tagged one. */
export function untagged(reply: string): string[] {
  return reply.split('\r\n').filter((l) => l.startsWith('* '));
}

/**
 * Eleven messages laid out for the RFC 4731 §3.1 examples: FLAGGED SINCE 1-Feb-1994
 * NOT FROM "Smith" matches 2, 10 and 11; UNSEEN matches 4 onwards.
 */
export function esearchMails(): TestMail[] {
  const mails: TestMail[] = [];
  for (let i = 1; i <= 11; i++) {
    const flagged = i === 1 || i === 2 || i === 10 || i === 11;
    const seen = i <= 3;
    mails.push({
      from: i === 1 ? 'John Smith <smith@example.net>' : `Writer ${i} <w${i}@example.net>`,
      subject: `message ${i}`,
      date: `Mon, ${i} Mar 1999 10:00:00 +0000`,
      internal: i === 5 ? '17-Jan-1994 09:00:00 +0000' : `0${(i % 9) + 1}-Mar-1999 10:00:00 +0000`,
      flags: [flagged ? '\\Flagged' : '', seen ? '\\Seen' : ''].filter(Boolean).join(' '),
    });
  }
  return mails;
}

/**
 * A mailbox for SORT and THREAD: a reply chain delivered out of order, a reply whose
 * parent is missing (a dummy), replies found only by subject, list tags and forward
 * markers around base subjects, a message without a Date header, equal keys broken by
 * sequence number.
 */
export function threadMails(): TestMail[] {
  return [
    {
      from: 'Carol <carol@example.net>',
      cc: 'zed@example.net',
      subject: 'Re: Lunch',
      date: 'Tue, 02 Mar 2021 12:00:00 +0100',
      messageId: '<b@example.net>',
      inReplyTo: '<a@example.net>',
      references: '<a@example.net>',
      internal: '02-Mar-2021 11:00:01 +0000',
      padding: 3,
    },
    {
      from: 'Bob <bob@example.net>',
      subject: 'Lunch',
      date: 'Mon, 01 Mar 2021 09:00:00 -0500',
      messageId: '<a@example.net>',
      internal: '01-Mar-2021 14:00:02 +0000',
      padding: 1,
    },
    {
      from: 'alice@example.org',
      to: 'bob@example.net',
      cc: 'amy@example.net',
      subject: '[team] Re: [team] RE: Lunch',
      date: 'Wed, 03 Mar 2021 08:00:00 +0000',
      messageId: '<c@example.net>',
      references: '<a@example.net> <b@example.net>',
      internal: '03-Mar-2021 08:00:03 +0000',
    },
    {
      from: 'Dave <dave@example.net>',
      subject: 'Re: Budget',
      date: 'Thu, 04 Mar 2021 10:00:00 +0000',
      messageId: '<e@example.net>',
      references: '<missing@example.net>',
      internal: '04-Mar-2021 10:00:04 +0000',
      padding: 7,
    },
    {
      from: 'Erin <erin@example.net>',
      subject: 'Re: Budget',
      date: 'Fri, 05 Mar 2021 10:00:00 +0000',
      messageId: '<f@example.net>',
      references: '<missing@example.net>',
      internal: '05-Mar-2021 10:00:05 +0000',
    },
    {
      from: 'Frank <frank@example.net>',
      subject: 'Fwd: Budget (fwd)',
      date: null,
      messageId: '<g@example.net>',
      internal: '06-Mar-2021 10:00:06 +0000',
      padding: 2,
    },
    {
      from: 'Bob <bob@example.net>',
      subject: '[fwd: Holiday plans]',
      date: 'Sun, 28 Feb 2021 10:00:00 +0000',
      messageId: '<h@example.net>',
      internal: '28-Feb-2021 10:00:07 +0000',
    },
    {
      from: 'Grace <grace@example.net>',
      subject: 'Holiday   plans',
      date: 'Sat, 27 Feb 2021 10:00:00 +0000',
      messageId: '<i@example.net>',
      internal: '07-Mar-2021 10:00:08 +0000',
      padding: 1,
    },
    {
      from: 'Bob <bob@example.net>',
      subject: '=?UTF-8?Q?Re=3A_Caf=C3=A9?=',
      date: 'Sat, 27 Feb 2021 10:00:00 +0000',
      messageId: '<a@example.net>',
      internal: '08-Mar-2021 10:00:09 +0000',
    },
    {
      from: 'Heidi <heidi@example.net>',
      subject: '',
      date: 'Mon, 08 Mar 2021 10:00:00 +0000',
      messageId: '<j@example.net>',
      inReplyTo: '<j@example.net>',
      internal: '08-Mar-2021 10:00:10 +0000',
    },
  ];
}

/**
 * References that disagree: a loop (x ↔ y), a chain given in reverse, a message whose
 * References skip a level, one whose In-Reply-To differs from its References, a
 * reference list naming the message itself, and subjects that merge threads (RFC 5256
 * REFERENCES steps 1 and 5).
 */
export function tangledMails(): TestMail[] {
  const base = { from: 'T <t@example.net>', internal: '01-Apr-2021 10:00:00 +0000' };
  const day = (d: number): string => `Thu, ${String(d).padStart(2, '0')} Apr 2021 10:00:00 +0000`;
  return [
    { ...base, subject: 'Loop', date: day(1), messageId: '<x@t>', references: '<y@t>' },
    { ...base, subject: 'Re: Loop', date: day(2), messageId: '<y@t>', references: '<x@t>' },
    { ...base, subject: 'Chain', date: day(9), messageId: '<c3@t>', references: '<c1@t> <c2@t>' },
    { ...base, subject: 'Chain', date: day(8), messageId: '<c2@t>', references: '<c1@t>' },
    { ...base, subject: 'Chain', date: day(7), messageId: '<c1@t>' },
    {
      ...base,
      subject: 'Re: Chain',
      date: day(10),
      messageId: '<c4@t>',
      references: '<c1@t> <c3@t>',
    },
    {
      ...base,
      subject: 'Re: Chain',
      date: day(11),
      messageId: '<c5@t>',
      inReplyTo: '<c2@t>',
      references: '<c1@t> <c4@t>',
    },
    { ...base, subject: 'Self', date: day(3), messageId: '<s@t>', references: '<s@t> <x@t>' },
    { ...base, subject: 'Re: Orphans', date: day(4), messageId: '<o1@t>', references: '<gone1@t>' },
    { ...base, subject: 'Re: Orphans', date: day(5), messageId: '<o2@t>', references: '<gone2@t>' },
    { ...base, subject: 'Orphans', date: day(6), messageId: '<o3@t>' },
    { ...base, subject: 'Re: Re: Re: Orphans', date: day(12), inReplyTo: '<o3@t> <o1@t>' },
    { ...base, subject: '[fwd: Orphans]', date: day(13), messageId: '<o3@t>' },
  ];
}
