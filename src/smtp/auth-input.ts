/**
 * What mailauth is given to read: a bounded view of the message, so that the work its
 * checks do is bounded too (docs/threat-model.md "Limits"). The message itself is never
 * changed; this only decides which bytes the checks see.
 *
 * - Only the first `maxDkimSignatures` DKIM-Signature fields (the topmost, the newest) are
 *   kept: each one costs a key lookup, a canonicalized header and, with its own
 *   canonicalization or l= length, its own pass over the whole body. Other verifiers cap
 *   them the same way (KumoMTA 10, mailauth 8.2 20); the rest are not evaluated.
 * - ARC sets are left out: ARC is not evaluated here (`disableArc`), yet mailauth 4 still
 *   parses every set and verifies the newest ARC-Message-Signature and ARC-Seal.
 * - Without a DKIM-Signature there is no body hash to compute: SPF needs the envelope,
 *   DMARC the From header, so the header section is enough.
 */

const ARC_FIELDS = new Set(['arc-seal', 'arc-message-signature', 'arc-authentication-results']);

/** Where the header section ends (after its blank line); -1 without a blank line. */
export function headerEnd(message: Uint8Array): number {
  const bytes = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  const crlf = bytes.indexOf('\r\n\r\n');
  const lf = bytes.indexOf('\n\n');
  const ends = [crlf === -1 ? -1 : crlf + 4, lf === -1 ? -1 : lf + 2].filter((end) => end !== -1);
  return ends.length > 0 ? Math.min(...ends) : -1;
}

/** Field name of a header line (lower case), '' for a continuation line or garbage. */
function fieldName(line: string): string {
  if (line.startsWith(' ') || line.startsWith('\t')) return '';
  const colon = line.indexOf(':');
  return colon <= 0 ? '' : line.slice(0, colon).trimEnd().toLowerCase();
}

export function authenticationInput(message: Buffer, maxDkimSignatures = 5): Buffer[] {
  const end = headerEnd(message);
  // No blank line: the message is all header; the header caps bounded it already.
  if (end === -1) return [message];
  const header = message.toString('latin1', 0, end);
  const kept: string[] = [];
  let signatures = 0;
  let keep = true;
  let changed = false;
  // Lines keep their own line ends; a field's continuation lines follow its decision.
  for (const line of header.split(/(?<=\n)/)) {
    const name = fieldName(line);
    if (name !== '') {
      keep = !ARC_FIELDS.has(name);
      if (name === 'dkim-signature') {
        signatures += 1;
        keep = signatures <= maxDkimSignatures;
      }
    }
    if (keep) kept.push(line);
    else changed = true;
  }
  const head = changed ? Buffer.from(kept.join(''), 'latin1') : message.subarray(0, end);
  if (signatures === 0 || maxDkimSignatures === 0) return [head];
  return [head, message.subarray(end)];
}
