import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStoreServer, Wire, type StoreServer } from '../helpers/store-imap.js';
import { sampleMessages, STORE_IMAP_FIXTURES } from '../helpers/store-messages.js';
import { loadTranscript, runStep, transcriptFiles } from '../helpers/store-transcript.js';

/** Every command of the server, scripted on a raw socket against the real Maildir store (RFC 3501 and extensions). */
describe('IMAP transcripts (raw socket, expected replies in fixtures)', () => {
  const files = transcriptFiles(join(STORE_IMAP_FIXTURES, 'transcripts'));
  let server: StoreServer | null = null;

  afterAll(async () => {
    await server?.stop();
  });

  for (const file of files) {
    describe(file.split('/').pop() as string, () => {
      beforeAll(async () => {
        await server?.stop();
        server = await startStoreServer(['alice']);
        for (const m of sampleMessages())
          await server.store.deliver('alice', m, {
            internalDate: new Date('2026-03-20T12:00:00Z'),
          });
      });

      it('matches the expected replies line by line', async () => {
        const wire = await Wire.open((server as StoreServer).server.port);
        try {
          const problems: string[] = [];
          const steps = loadTranscript(file);
          expect(steps.length).toBeGreaterThan(10);
          for (const step of steps) problems.push(...(await runStep(wire, step)).problems);
          expect(problems).toEqual([]);
        } finally {
          wire.close();
        }
      });
    });
  }
});
