import { decodeWords } from '../../mime/decode.js';

/** subj-leader = (*subj-blob subj-refwd) ; subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":" */
const REFWD = /^(?:\[[^[\]]*\] *)*(?:re|fwd?) *(?:\[[^[\]]*\] *)?:/i;
/** subj-blob = "[" *BLOBCHAR "]" *WSP */
const BLOB = /^\[[^[\]]*\] */;

export interface BaseSubject {
  /** The base subject, compared with i;ascii-casemap. */
  base: string;
  /** Whether extraction removed a reply or forward marker (RFC 5256 §2.1 "reply or forward"). */
  reply: boolean;
}

/**
 * Base subject extraction, RFC 5256 §2.1 steps 1–7: decoded encoded-words, whitespace
 * runs as one space, then trailers ("(fwd)", spaces), leaders ("Re:", "Fwd:", "[list]"
 * before them), a leading "[blob]" that does not make up the whole subject, and
 * "[fwd: …]" wrappers stripped until nothing changes.
 */
export function baseSubject(raw: string | null): BaseSubject {
  let s = decodeWords(raw ?? '')
    .replace(/\r?\n[ \t]/g, ' ')
    .replace(/[\t\r\n]/g, ' ')
    .replace(/ {2,}/g, ' ');
  let reply = false;
  for (;;) {
    // (2) subj-trailer = "(fwd)" / WSP
    for (;;) {
      if (s.endsWith(' ')) s = s.slice(0, -1);
      else if (s.toLowerCase().endsWith('(fwd)')) {
        s = s.slice(0, -5);
        reply = true;
      } else break;
    }
    // (3)–(5)
    for (;;) {
      const before = s;
      const leader = REFWD.exec(s);
      if (leader !== null) {
        s = s.slice(leader[0].length);
        reply = true;
      } else if (s.startsWith(' ')) s = s.slice(1);
      const blob = BLOB.exec(s);
      if (blob !== null && /[^ ]/.test(s.slice(blob[0].length))) s = s.slice(blob[0].length);
      if (s === before) break;
    }
    // (6) subj-fwd-hdr = "[fwd:" ; subj-fwd-trl = "]"
    if (s.length >= 6 && s.slice(0, 5).toLowerCase() === '[fwd:' && s.endsWith(']')) {
      s = s.slice(5, -1);
      reply = true;
      continue;
    }
    return { base: s, reply };
  }
}

/** i;ascii-casemap (RFC 4790): ASCII letters compared upper-cased, everything else by code unit. */
export function asciiCasemap(s: string): string {
  return s.replace(/[a-z]+/g, (m) => m.toUpperCase());
}
