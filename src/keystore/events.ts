/**
 * Local fan-out of change notifications to listeners. A throwing listener is isolated
 * (reported to `onListenerError`), so one bad subscriber cannot stop the others.
 */
import type { KeyStoreEvent, KeyStoreListener } from './types.js';

export class EventHub {
  readonly #listeners = new Set<KeyStoreListener>();

  constructor(private readonly onListenerError: (err: unknown) => void = () => {}) {}

  subscribe(listener: KeyStoreListener): () => void {
    // Wrap so the same function may subscribe twice and unsubscribe each separately.
    const entry: KeyStoreListener = (event) => listener(event);
    this.#listeners.add(entry);
    return () => {
      this.#listeners.delete(entry);
    };
  }

  emit(event: KeyStoreEvent): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(event);
      } catch (err) {
        this.onListenerError(err);
      }
    }
  }

  clear(): void {
    this.#listeners.clear();
  }
}

/** Checks the shape of a decoded event that arrived over the wire (Redis pub/sub). */
export function parseEvent(value: unknown): KeyStoreEvent | null {
  if (typeof value !== 'object' || value === null) return null;
  const e = value as Record<string, unknown>;
  const str = (k: string): boolean => typeof e[k] === 'string';
  switch (e.type) {
    case 'device-revoked':
      return str('address') && str('id') && str('deviceId')
        ? {
            type: e.type,
            address: e.address as string,
            id: e.id as string,
            deviceId: e.deviceId as string,
          }
        : null;
    case 'key-added':
      return str('address') && str('id') && str('deviceId') && str('groupId')
        ? {
            type: e.type,
            address: e.address as string,
            id: e.id as string,
            deviceId: e.deviceId as string,
            groupId: e.groupId as string,
          }
        : null;
    case 'list-changed':
      return str('list') &&
        Array.isArray(e.members) &&
        e.members.every((m: unknown) => typeof m === 'string')
        ? { type: e.type, list: e.list as string, members: e.members as string[] }
        : null;
    case 'user-removed':
      return str('address') ? { type: e.type, address: e.address as string } : null;
    default:
      return null;
  }
}

/** One pub/sub message carries the events of one change, as a JSON array. */
export function encodeEventBatch(events: KeyStoreEvent[]): string {
  return JSON.stringify(events);
}

/** The well-formed events of a pub/sub message; anything else is dropped. */
export function decodeEventBatch(message: string): KeyStoreEvent[] {
  let batch: unknown;
  try {
    batch = JSON.parse(message);
  } catch {
    return [];
  }
  if (!Array.isArray(batch)) return [];
  return batch
    .map((item: unknown) => parseEvent(item))
    .filter((e): e is KeyStoreEvent => e !== null);
}
