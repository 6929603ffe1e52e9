import { parseSequenceSet } from './sequence.js';
import type { CommandBody } from './types.js';
import type { Tokens } from './tokens.js';

/**
 * store           = "STORE" SP sequence-set SP store-att-flags
 * store-att-flags = (["+" / "-"] "FLAGS" [".SILENT"]) SP (flag-list / (flag *(SP flag)))
 * store-modifiers = SP "(" "UNCHANGEDSINCE" SP mod-sequence-valzer ")"  (RFC 7162 §7, after the set)
 */
export function parseStore(t: Tokens): CommandBody {
  t.sp();
  const set = parseSequenceSet(t);
  t.sp();
  let unchangedSince: number | undefined;
  if (t.tryChar('(')) {
    if (!t.tryKeyword('UNCHANGEDSINCE')) t.fail('UNCHANGEDSINCE');
    t.sp();
    unchangedSince = t.modseq(true);
    t.char(')');
    t.sp();
  }
  const operation = t.tryChar('+') ? 'add' : t.tryChar('-') ? 'remove' : 'set';
  const word = t.dottedWord();
  if (word !== 'FLAGS' && word !== 'FLAGS.SILENT') t.fail('FLAGS or FLAGS.SILENT');
  const silent = word === 'FLAGS.SILENT';
  t.sp();
  let flags: string[];
  if (t.peek() === 0x28) flags = t.flagList();
  else {
    flags = [];
    do flags.push(t.flag());
    while (t.trySp());
  }
  t.end();
  return { name: 'STORE', set, operation, silent, flags, unchangedSince };
}

/** copy = "COPY" SP sequence-set SP mailbox ; move = "MOVE" SP sequence-set SP mailbox (RFC 6851) */
export function parseCopyMove(name: 'COPY' | 'MOVE') {
  return (t: Tokens): CommandBody => {
    t.sp();
    const set = parseSequenceSet(t);
    t.sp();
    const mailbox = t.mailbox();
    t.end();
    return { name, set, mailbox };
  };
}

/** expunge = "EXPUNGE" ; uid-expunge = "UID" SP "EXPUNGE" SP sequence-set (RFC 4315) */
export function parseExpunge(t: Tokens, uid: boolean): CommandBody {
  if (!uid) {
    t.end();
    return { name: 'EXPUNGE', set: null };
  }
  t.sp();
  const set = parseSequenceSet(t);
  t.end();
  return { name: 'EXPUNGE', set };
}
