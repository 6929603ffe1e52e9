/**
 * The gateway's version, read from package.json: the one place it is written. The file
 * sits two levels up from this module both in the source tree (src/cli/) and in the built
 * package (dist/cli/), so one relative path serves `npx tsx`, `npm start` and an installed
 * `recrypt`.
 */
import { readFileSync } from 'node:fs';

interface PackageJson {
  name: string;
  version: string;
}

const packageJson = JSON.parse(
  readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
) as PackageJson;

export const PACKAGE_NAME = packageJson.name;
export const VERSION = packageJson.version;
