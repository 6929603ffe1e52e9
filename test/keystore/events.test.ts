import { describe, expect, it } from 'vitest';
import { decodeEventBatch, encodeEventBatch, EventHub } from '../../src/keystore/events.js';
import type { KeyStoreEvent } from '../../src/keystore/index.js';

describe('event batches on the wire', () => {
  it('round-trip every event type', () => {
    const events: KeyStoreEvent[] = [
      {
        type: 'key-added',
        address: 'a@example.org',
        id: '0123456789abcdef',
        deviceId: '3000',
        groupId: '3001',
      },
      {
        type: 'device-revoked',
        address: 'a@example.org',
        id: '0123456789abcdef',
        deviceId: '3000',
      },
      { type: 'user-removed', address: 'a@example.org' },
    ];
    expect(decodeEventBatch(encodeEventBatch(events))).toEqual(events);
  });

  it('drop what is not a well-formed event', () => {
    expect(decodeEventBatch('not json')).toEqual([]);
    expect(decodeEventBatch('{"type":"user-removed","address":"a@b"}')).toEqual([]);
    expect(
      decodeEventBatch(
        JSON.stringify([
          { type: 'user-removed' },
          { type: 'device-revoked', address: 'a@b', id: 1, deviceId: 'x' },
          { type: 'resync' },
          null,
          { type: 'user-removed', address: 'a@b', extra: 'ignored' },
        ]),
      ),
    ).toEqual([{ type: 'user-removed', address: 'a@b' }]);
  });
});

describe('EventHub', () => {
  it('isolates a throwing listener and unsubscribes', () => {
    const errors: unknown[] = [];
    const hub = new EventHub((err) => errors.push(err));
    const seen: string[] = [];
    hub.subscribe(() => {
      throw new Error('bad listener');
    });
    const off = hub.subscribe((e) => seen.push(e.type));
    hub.emit({ type: 'resync' });
    off();
    hub.emit({ type: 'resync' });
    expect(seen).toEqual(['resync']);
    expect(errors).toHaveLength(2);
  });
});
