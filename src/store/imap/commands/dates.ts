import type { Tokens } from './tokens.js';

const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];

/**
 * date      = date-text / DQUOTE date-text DQUOTE
 * date-text = date-day "-" date-month "-" date-year
 * Returns midnight UTC of that day (SEARCH compares calendar days).
 */
export function parseDate(t: Tokens): Date {
  const quoted = t.tryChar('"');
  const text = readUntil(t, quoted ? 0x22 : 0x20);
  if (quoted) t.char('"');
  const m = /^(\d{1,2})-([A-Za-z]{3})-(\d{4})$/.exec(text);
  const month = m ? MONTHS.indexOf((m[2] as string).toUpperCase()) : -1;
  if (!m || month < 0) return t.fail('date (dd-Mon-yyyy)');
  const day = Number(m[1]);
  const d = new Date(Date.UTC(Number(m[3]), month, day));
  if (d.getUTCDate() !== day) t.fail('valid date');
  return d;
}

/**
 * date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE
 * zone      = ("+" / "-") 4DIGIT
 */
export function parseDateTime(t: Tokens): Date {
  t.char('"');
  const text = readUntil(t, 0x22);
  t.char('"');
  const m =
    /^[ ]?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$/.exec(text);
  const month = m ? MONTHS.indexOf((m[2] as string).toUpperCase()) : -1;
  if (!m || month < 0) return t.fail('date-time');
  const [day, year, hh, mm, ss, zh, zm] = [m[1], m[3], m[4], m[5], m[6], m[8], m[9]].map(
    Number,
  ) as number[];
  if (new Date(Date.UTC(year as number, month, day as number)).getUTCDate() !== day)
    t.fail('valid date');
  if ((hh as number) > 23 || (mm as number) > 59 || (ss as number) > 60 || (zm as number) > 59)
    t.fail('valid time');
  const offset = (m[7] === '-' ? -1 : 1) * ((zh as number) * 60 + (zm as number));
  const utc = Date.UTC(year as number, month, day as number, hh, mm, ss) - offset * 60_000;
  return new Date(utc);
}

function readUntil(t: Tokens, stop: number): string {
  const start = t.pos;
  while (!t.done && t.peek() !== stop && t.peek() !== 0x29) t.pos++;
  return t.buf.toString('latin1', start, t.pos);
}

/** INTERNALDATE as RFC 3501 prints it, in UTC (`"05-Mar-2026 14:02:11 +0000"`). */
export function formatDateTime(d: Date): string {
  const day = String(d.getUTCDate()).padStart(2, ' ');
  const month =
    (MONTHS[d.getUTCMonth()] as string).charAt(0) +
    (MONTHS[d.getUTCMonth()] as string).slice(1).toLowerCase();
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${day}-${month}-${d.getUTCFullYear()} ${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} +0000`;
}
