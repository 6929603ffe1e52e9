/**
 * `npm test` runs this first (the `pretest` script): on a machine without the Debian
 * packages the tests need, one message lists what is missing and the command that
 * installs it, within seconds instead of as failures ten minutes in (.ci/prerequisites).
 */
import {
  missingMessage,
  missingPrerequisites,
  PREREQUISITES_FILE,
  readPrerequisites,
} from './helpers/prerequisites.js';

// Another list only for the test of this script (test/ci/prerequisites.test.ts).
const file = process.env.RECRYPT_PREREQUISITES_FILE ?? PREREQUISITES_FILE;
const message = missingMessage(missingPrerequisites(readPrerequisites(file)));
if (message !== null) {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}
