/**
 * Key-store events across the processes of one gateway with the SQLite key store
 * (docs/deployment.md "Several processes on one machine"). The SQLite store notifies
 * only inside its own process; Redis would carry a change to every process through
 * pub/sub. Here each process's own events go out over cluster IPC (the primary hands them
 * to every other process), and events from other processes reach this process's
 * subscribers as if its own store had made them: a device revoked through one worker's
 * admin API ends its IMAP sessions on every worker, caches drop its points everywhere.
 */
import { EventHub, parseEvent } from '../keystore/events.js';
import type { KeyStore, KeyStoreEvent, KeyStoreListener } from '../keystore/index.js';

/** Where a process's events go and where the other processes' come from. */
export interface EventRelay {
  publish(events: KeyStoreEvent[]): void;
  onEvents(listener: (events: KeyStoreEvent[]) => void): () => void;
}

/** The well-formed, shareable events of a batch another process sent. */
export function relayableEvents(events: unknown): KeyStoreEvent[] {
  if (!Array.isArray(events)) return [];
  return events
    .map((event: unknown) => parseEvent(event))
    .filter((event): event is KeyStoreEvent => event !== null);
}

/**
 * `store` whose subscribers also hear the other processes' events, and whose own events
 * are published to them. Returns the store and a function that stops relaying.
 */
export function relayedKeyStore(
  store: KeyStore,
  relay: EventRelay,
  onListenerError?: (error: unknown) => void,
): { keyStore: KeyStore; stop(): void } {
  const remote = new EventHub(onListenerError);
  // 'resync' is about this process's own channel: it is not another process's business.
  const stopOutgoing = store.subscribe((event) => {
    if (event.type !== 'resync') relay.publish([event]);
  });
  const stopIncoming = relay.onEvents((events) => {
    for (const event of relayableEvents(events)) remote.emit(event);
  });
  const subscribe = (listener: KeyStoreListener): (() => void) => {
    const local = store.subscribe(listener);
    const others = remote.subscribe(listener);
    return () => {
      local();
      others();
    };
  };
  const keyStore = new Proxy(store, {
    get(target, property, receiver) {
      if (property === 'subscribe') return subscribe;
      const value: unknown = Reflect.get(target, property, receiver);
      // The adapters keep #private state: their methods run with the real object as `this`.
      return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
    },
  });
  return {
    keyStore,
    stop() {
      stopOutgoing();
      stopIncoming();
      remote.clear();
    },
  };
}
