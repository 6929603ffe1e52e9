import { hostname } from 'node:os';

/**
 * Maildir unique base names, Dovecot style: `<sec>.M<usec>P<pid>Q<n>.<host>,S=<size>`.
 * The S= field lets Dovecot (and our rescan) know the size without stat.
 */

// '/' and ':' cannot appear in a file name's host part (Maildir spec escapes them).
const HOST =
  hostname()
    .replace(/\//g, '\\057')
    .replace(/:/g, '\\072')
    .replace(/[^\x21-\x7e]/g, '_') || 'localhost';
let counter = 0;

export function uniqueBase(size: number): string {
  const now = Date.now();
  const sec = Math.floor(now / 1000);
  const usec = (now % 1000) * 1000 + Math.floor(Math.random() * 1000);
  counter = (counter + 1) % 1_000_000_000;
  return `${sec}.M${usec}P${process.pid}Q${counter}.${HOST},S=${size}`;
}
