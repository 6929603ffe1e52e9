/** Standard output for command results (errors go through errors.ts to stderr). */
export function print(line: string): void {
  process.stdout.write(`${line}\n`);
}
