import type { Address, BodyPart, Envelope, HeaderParam } from '../../mime/types.js';
import { list, nstr, str } from '../serializer.js';

/** address = "(" addr-name SP addr-adl SP addr-mailbox SP addr-host ")" ; env-* = "(" 1*address ")" / nil */
function addresses(list_: Address[]): string {
  if (list_.length === 0) return 'NIL';
  return list(
    list_.map((a) => `(${nstr(a.name)} ${nstr(a.adl)} ${nstr(a.mailbox)} ${nstr(a.host)})`),
  );
}

/** envelope = "(" env-date SP env-subject SP env-from SP env-sender SP env-reply-to SP env-to SP env-cc SP env-bcc SP env-in-reply-to SP env-message-id ")" */
export function renderEnvelope(e: Envelope): string {
  return list([
    nstr(e.date),
    nstr(e.subject),
    addresses(e.from),
    addresses(e.sender),
    addresses(e.replyTo),
    addresses(e.to),
    addresses(e.cc),
    addresses(e.bcc),
    nstr(e.inReplyTo),
    nstr(e.messageId),
  ]);
}

/** body-fld-param = "(" string SP string *(SP string SP string) ")" / nil */
function params(ps: HeaderParam[]): string {
  if (ps.length === 0) return 'NIL';
  return list(ps.flatMap((p) => [str(p.name), str(p.value)]));
}

function disposition(part: BodyPart): string {
  if (part.disposition === null) return 'NIL';
  return `(${str(part.disposition.type)} ${params(part.disposition.params)})`;
}

function language(part: BodyPart): string {
  if (part.language === null || part.language.length === 0) return 'NIL';
  if (part.language.length === 1) return str(part.language[0] as string);
  return list(part.language.map(str));
}

/**
 * body = "(" (body-type-1part / body-type-mpart) ")"; `extended` selects BODYSTRUCTURE
 * (with body-ext-1part / body-ext-mpart) over BODY.
 */
export function renderBody(part: BodyPart, extended: boolean): string {
  const ct = part.contentType;
  if (ct.type === 'multipart' && part.parts.length > 0) {
    const children = part.parts.map((p) => renderBody(p, extended)).join('');
    const ext = extended
      ? ` ${params(ct.params)} ${disposition(part)} ${language(part)} ${nstr(part.location)}`
      : '';
    return `(${children} ${str(ct.subtype)}${ext})`;
  }
  // RFC 2045 §5.2: a text part without a charset is US-ASCII; say so, as RFC 3501's
  // example and Dovecot do, so clients need not know the default.
  const typeParams =
    ct.type === 'text' && !ct.params.some((p) => p.name.toLowerCase() === 'charset')
      ? [{ name: 'charset', value: 'us-ascii' }, ...ct.params]
      : ct.params;
  const fields = [
    str(ct.type),
    str(ct.subtype),
    params(typeParams),
    nstr(part.id),
    nstr(part.description),
    str(part.encoding ?? '7BIT'),
    String(part.size),
  ];
  if (ct.type === 'message' && ct.subtype === 'rfc822' && part.message !== null) {
    fields.push(
      renderEnvelope(part.message.envelope),
      renderBody(part.message.root, extended),
      String(part.lines),
    );
  } else if (ct.type === 'text') fields.push(String(part.lines));
  if (extended) fields.push(nstr(part.md5), disposition(part), language(part), nstr(part.location));
  return list(fields);
}
