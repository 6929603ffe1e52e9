import { setImmediate as nextTurn } from 'node:timers/promises';
import { SliceLineCounts } from '../mime/line-count.js';
import { parseMessageStructure } from '../mime/structure.js';
import type { MessageStructure } from '../mime/types.js';

/**
 * Bytes of line counting between two turns of the event loop. The store shares the
 * gateway's one event loop with every listener, and the messages it gets are up to the
 * MX's limit (50 MiB, about 68 MiB once encrypted): counted in one go, such a message's
 * lines hold every other client for tens of milliseconds.
 */
const COUNT_PER_TURN = 1024 * 1024;

/** parseMessageStructure, with a large message's lines counted a slice per turn. */
export async function parseStructureYielding(bytes: Uint8Array): Promise<MessageStructure> {
  if (bytes.length <= COUNT_PER_TURN) return parseMessageStructure(bytes);
  const counts = new SliceLineCounts(bytes);
  while (!counts.done) {
    counts.countNext(COUNT_PER_TURN);
    await nextTurn();
  }
  return parseMessageStructure(bytes, counts.counter());
}
