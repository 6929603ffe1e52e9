import { StoreError, type Flag, type FlagOperation } from '../backend.js';

/**
 * Flags ↔ Maildir file-name info (`<base>:2,<letters>`). System flags use Maildir's
 * upper-case letters; keywords use a–z, letter i being line i of the mailbox's
 * `dovecot-keywords` file (Dovecot's scheme), so at most 26 keywords per mailbox.
 */

const SYSTEM: ReadonlyArray<[Flag, string]> = [
  ['\\Draft', 'D'],
  ['\\Flagged', 'F'],
  ['\\Answered', 'R'],
  ['\\Seen', 'S'],
  ['\\Deleted', 'T'],
];
const SYSTEM_BY_LOWER = new Map(SYSTEM.map(([f]) => [f.toLowerCase(), f]));
const LETTER_OF = new Map(SYSTEM);
const FLAG_OF_LETTER = new Map(SYSTEM.map(([f, l]) => [l, f]));
// RFC 3501 atom minus the characters that have meaning in flag lists; control characters
// are exactly what it must exclude.
// eslint-disable-next-line no-control-regex
const KEYWORD = /^[^\u0000-\u0020\u007f(){%*"\\\]]+$/;
export const MAX_KEYWORDS = 26;

/**
 * Canonical flags: system flags in their standard case, keywords validated and
 * de-duplicated case-insensitively. `\Recent` is dropped (it is never stored).
 */
export function normalizeFlags(flags: Flag[]): Flag[] {
  const out: Flag[] = [];
  const seen = new Set<string>();
  for (const flag of flags) {
    const lower = flag.toLowerCase();
    if (lower === '\\recent') continue;
    let canonical: Flag;
    if (flag.startsWith('\\')) {
      const sys = SYSTEM_BY_LOWER.get(lower);
      if (sys === undefined) throw new StoreError('invalid-name', `unknown system flag`);
      canonical = sys;
    } else {
      if (!KEYWORD.test(flag) || flag.length > 100)
        throw new StoreError('invalid-name', 'invalid keyword');
      canonical = flag;
    }
    if (seen.has(lower)) continue;
    seen.add(lower);
    out.push(canonical);
  }
  return out;
}

/** The info letters for `flags`, sorted as Maildir wants; keywords must already be in `keywords`. */
export function flagsToLetters(flags: Flag[], keywords: string[]): string {
  const letters: string[] = [];
  for (const flag of flags) {
    const sys = LETTER_OF.get(flag);
    if (sys !== undefined) {
      letters.push(sys);
      continue;
    }
    const index = keywords.findIndex((k) => k.toLowerCase() === flag.toLowerCase());
    if (index >= 0 && index < MAX_KEYWORDS) letters.push(String.fromCharCode(0x61 + index));
  }
  return [...new Set(letters)].sort().join('');
}

/** Flags named by info letters; unknown letters (e.g. P, or a keyword index not in the file) are ignored. */
export function lettersToFlags(letters: string, keywords: string[]): Flag[] {
  const flags: Flag[] = [];
  for (const letter of letters) {
    const sys = FLAG_OF_LETTER.get(letter);
    if (sys !== undefined) flags.push(sys);
    else if (letter >= 'a' && letter <= 'z') {
      const keyword = keywords[letter.charCodeAt(0) - 0x61];
      if (keyword !== undefined) flags.push(keyword);
    }
  }
  return flags;
}

/** Letters that are not flags we manage (kept on rename so other tools' info survives). */
export function foreignLetters(letters: string): string {
  return [...letters].filter((l) => !FLAG_OF_LETTER.has(l) && !(l >= 'a' && l <= 'z')).join('');
}

/** Splits a Maildir file name into its base (the part the uidlist records) and info letters. */
export function splitFileName(fileName: string): { base: string; letters: string } {
  const colon = fileName.indexOf(':');
  if (colon === -1) return { base: fileName, letters: '' };
  const info = fileName.slice(colon + 1);
  return { base: fileName.slice(0, colon), letters: info.startsWith('2,') ? info.slice(2) : '' };
}

export function fileNameOf(base: string, letters: string): string {
  return `${base}:2,${letters}`;
}

/** `S=<size>` from a Dovecot-style base name, or null. */
export function sizeFromBase(base: string): number | null {
  const m = /,S=(\d+)/.exec(base);
  return m === null ? null : Number(m[1]);
}

/** The flags after STORE `op` with (normalised) `flags`, or null when nothing changes. */
export function applyFlagOperation(
  current: Flag[],
  op: FlagOperation,
  flags: Flag[],
): Flag[] | null {
  const has = (list: Flag[], f: Flag): boolean =>
    list.some((c) => c.toLowerCase() === f.toLowerCase());
  let next: Flag[];
  if (op === 'set') next = flags;
  else if (op === 'add') next = [...current, ...flags.filter((f) => !has(current, f))];
  else next = current.filter((f) => !has(flags, f));
  const same = next.length === current.length && next.every((f) => has(current, f));
  return same ? null : next;
}
