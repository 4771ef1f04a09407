import type { KvStore } from '../mvcc/kv-store.js';
import type { ScanResume } from '../mvcc/kv.js';
import { KeyraftError, isKeyraftError } from '../platform/errors.js';
import { Limits } from '../platform/limits.js';
import type { KeyValue } from '../proto/etcd-types.js';
import type { HistoryEvent, WatchHistory } from '../watch/watch.js';

/**
 * The MVCC store as the watch hub's history (watch/watch.ts WatchHistory). A read is a scan of
 * the watcher's range in the key index; a range over many keys is scanned
 * Limits.watchHistoryScanKeysPerTurn keys per event-loop turn, so a catch-up over a large
 * keyspace never holds the main thread. The index knows every revision but holds only the latest
 * values: the events' older values and prev_kvs are then read from the backend asynchronously
 * (KvStore.readValues, in bounded batches, through its cache), with the read's revision pinned
 * against compaction from before the scan until the values are in. `store()` is read on every
 * call: an installed state image replaces the store.
 */
export class StoreWatchHistory implements WatchHistory {
  constructor(private readonly store: () => KvStore) {}

  get currentRevision(): number {
    return this.store().currentRevision;
  }

  get compactedRevision(): number {
    return this.store().compactedRevision;
  }

  async read(key: Buffer, end: Buffer | undefined, fromRevision: number, toRevision: number, withPrevious: boolean): Promise<HistoryEvent[]> {
    // The watch layer's "every key >= key" (an empty end) is mvcc's end "\0".
    if (end !== undefined && end.length === 0) end = FROM_KEY_END;
    const first = this.store();
    if (fromRevision < first.compactedRevision) throw new KeyraftError('Compacted');
    // prev_kv reads at fromRevision - 1 at the oldest: pinned from before the first index look-up.
    const pin = first.pinHistory(fromRevision - 1);
    try {
      return await this.readPinned(key, end, fromRevision, toRevision, withPrevious);
    } finally {
      pin.release();
    }
  }

  private async readPinned(key: Buffer, end: Buffer | undefined, fromRevision: number, toRevision: number, withPrevious: boolean): Promise<HistoryEvent[]> {
    const kvs: KeyValue[] = [];
    let resume: ScanResume = null;
    for (;;) {
      const store = this.store();
      if (fromRevision < store.compactedRevision) throw new KeyraftError('Compacted');
      resume = store.collectChanges(key, end, fromRevision, toRevision, resume, Limits.watchHistoryScanKeysPerTurn, kvs);
      if (resume === null) break;
      await new Promise((resolve) => setImmediate(resolve));
    }
    const store = this.store();
    // Revision order; within a revision, op order (a txn's), which is key order unless the store
    // recorded otherwise. The sort is stable and the scan went in key order.
    kvs.sort((a, b) => {
      if (a.mod_revision !== b.mod_revision) return a.mod_revision - b.mod_revision;
      const order = store.opOrderOf(a.mod_revision);
      return order === undefined ? 0 : order.get(a.key.toString('latin1'))! - order.get(b.key.toString('latin1'))!;
    });
    if (fromRevision < store.compactedRevision) throw new KeyraftError('Compacted');
    // The previous values, resolved in this same turn as the index (before any await): the pin
    // keeps them readable.
    const prevs: (KeyValue | undefined)[] = withPrevious ? new Array(kvs.length) : [];
    if (withPrevious) for (let i = 0; i < kvs.length; i++) if (!isCreate(kvs[i]!)) prevs[i] = previousOf(store, kvs[i]!);
    await store.readValues(kvs, fromRevision);
    if (withPrevious) {
      const found: KeyValue[] = [];
      for (const p of prevs) if (p !== undefined) found.push(p);
      await store.readValues(found, fromRevision - 1);
      let at = 0;
      for (let i = 0; i < prevs.length; i++) if (prevs[i] !== undefined) prevs[i] = found[at++];
    }
    const events: HistoryEvent[] = new Array(kvs.length);
    for (let i = 0; i < kvs.length; i++) {
      const kv = kvs[i]!;
      events[i] = withPrevious && !isCreate(kv) ? { kv, prev: prevs[i] } : { kv };
    }
    return events;
  }
}

const FROM_KEY_END = Buffer.from([0]);

/** etcd's IsCreateEvent: a put that created the key has no previous value to look up. */
function isCreate(kv: KeyValue): boolean {
  return kv.create_revision !== 0 && kv.create_revision === kv.mod_revision;
}

/**
 * The key's value just before kv's revision (its value maybe unread: see readValues); undefined
 * if none, or if compaction took it (etcd omits prev_kv then).
 */
function previousOf(store: KvStore, kv: KeyValue): KeyValue | undefined {
  try {
    return store.read().range(kv.key, undefined, { revision: kv.mod_revision - 1 }).kvs[0];
  } catch (err) {
    if (isKeyraftError(err) && err.code === 'Compacted') return undefined;
    throw err;
  }
}
