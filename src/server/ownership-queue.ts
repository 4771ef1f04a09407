/**
 * The queue of ownership keys under a prefix that clientv3's concurrency package builds both its
 * Mutex and its Election on (concurrency/mutex.go, election.go and key.go), run here against the
 * member's own KV and watch rather than over a network client. The Lock service
 * (lock-service.ts) and the Election service (election-service.ts) are each a thin layer on it,
 * as etcd's v3lock and v3election are thin layers on Mutex and Election.
 *
 *   - joinQueue: a contender's key is `<prefix><lease in hex>`, created by a txn that puts it
 *     (with the contender's value, under its lease) only if its create_revision is 0, and that
 *     otherwise reads it back: the same lease asking again keeps its original place.
 *   - waitForOlderDeletes: the contender owns the prefix when no key under it has a smaller
 *     create revision. Until then it waits for the deletion of the newest key older than its own
 *     (range with max_create_revision = mine - 1, sorted by create revision descending, limit 1),
 *     then looks again: each contender watches exactly one other key, so a release wakes one
 *     waiter, not the whole queue (key.go's waitDeletes).
 *   - watchUntil: a watch on the member's own hub, fed decoded responses until the caller says it
 *     has seen what it waited for; Observe follows a leader's key with it.
 *
 * Worked example: leases 0x1a and 0x2b join prefix "job/". 0x1a's txn creates job/1a at rev 5
 * and finds nothing older: it owns the prefix. 0x2b creates job/2b at rev 6, finds job/1a
 * (create rev 5) and watches it from the range's revision; job/1a is deleted at rev 7, the watch
 * sees the DELETE, 0x2b looks again, finds nothing older than 6, and returns the range header of
 * rev 7.
 */
import { KeyraftError } from '../platform/errors.js';
import { decode, messageType } from '../proto/codec.js';
import { prefixEnd } from '../proto/key-range.js';
import {
  CompareResult, CompareTarget, EventType, SortOrder, SortTarget,
  type KeyValue, type ResponseHeader, type WatchCreateRequest, type WatchResponse,
} from '../proto/etcd-types.js';
import type { RaftKV, WatchApi } from './raft-kv.js';

const watchResponseType = messageType('etcdserverpb.WatchResponse');

export type QueueKV = RaftKV & WatchApi;

/** A contender's place: its key, the txn's header and the key's create revision (its place in the queue). */
export interface QueuePlace {
  key: Buffer;
  header: ResponseHeader;
  createRevision: number;
  /** The key as it was when the same lease had joined before (the txn's else branch); undefined when just created. */
  existing: KeyValue | undefined;
}

/** clientv3's key for a lease under a prefix: prefix + the lease id in %x (as uint64). */
export function ownerKey(prefix: Buffer, lease: bigint): Buffer {
  return Buffer.concat([prefix, Buffer.from(BigInt.asUintN(64, lease).toString(16))]);
}

/** Creates `key` (value, lease) unless it exists; either way says where it stands in the queue. */
export async function joinQueue(kv: QueueKV, key: Buffer, value: Buffer, lease: bigint): Promise<QueuePlace> {
  const txn = await kv.txn({
    compare: [{ key, target: CompareTarget.CREATE, result: CompareResult.EQUAL, create_revision: 0 }],
    success: [{ request_put: { key, value, lease } }],
    failure: [{ request_range: { key } }],
  });
  const header = txn.header!;
  if (txn.succeeded) return { key, header, createRevision: header.revision, existing: undefined };
  const existing = txn.responses[0]?.response_range?.kvs[0];
  // The failure branch read the key inside the same txn whose compare saw it: it cannot be missing.
  if (existing === undefined) throw new KeyraftError('Internal', `queue key ${key.toString()} vanished inside its txn`);
  return { key, header, createRevision: existing.create_revision, existing };
}

/** Waits until no key under `prefix` has a create revision below `myRevision`; the last range's header. */
export async function waitForOlderDeletes(kv: QueueKV, prefix: Buffer, myRevision: number, signal: AbortSignal | undefined): Promise<ResponseHeader> {
  for (;;) {
    if (signal?.aborted) throw new KeyraftError('Canceled');
    const older = await kv.range({
      key: prefix, range_end: prefixEnd(prefix), max_create_revision: myRevision - 1,
      sort_order: SortOrder.DESCEND, sort_target: SortTarget.CREATE, limit: 1,
    });
    const last = older.kvs[0];
    if (last === undefined) return older.header!;
    // From the revision the range saw: the key existed there, so a delete after it is not missed.
    await watchUntil(kv, { key: last.key, start_revision: older.header!.revision }, signal,
      (response) => response.events.some((e) => e.type === EventType.DELETE));
  }
}

/**
 * Watches from the member's own hub and hands each response to `seen` until it returns true.
 * Resolves then, or when the watch is cancelled or its start revision was compacted (the caller
 * looks again: always safe); rejects with Canceled if `signal` aborts, with the stream's error if
 * the hub ends it (member stopping).
 */
export function watchUntil(
  kv: QueueKV, create: WatchCreateRequest, signal: AbortSignal | undefined, seen: (response: WatchResponse) => boolean,
): Promise<WatchEnd> {
  return new Promise<WatchEnd>((resolve, reject) => {
    let settled = false;
    const finish = (end: WatchEnd | undefined, err?: unknown): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      stream.close();
      if (err === undefined) resolve(end!);
      else reject(err);
    };
    const onAbort = (): void => finish(undefined, new KeyraftError('Canceled'));
    const stream = kv.openWatchStream({
      send: (message) => {
        if (settled) return true;
        const response = decode(watchResponseType, Buffer.from(message)) as WatchResponse;
        response.events ??= [];
        if (response.canceled || (response.compact_revision ?? 0) > 0) finish('lost');
        else if (!response.created && seen(response)) finish('seen');
        return true;
      },
      onDrain: () => undefined,
      end: (error) => finish(undefined, error ?? new KeyraftError('Stopped')),
    });
    if (signal !== undefined) {
      if (signal.aborted) {
        finish(undefined, new KeyraftError('Canceled'));
        return;
      }
      signal.addEventListener('abort', onAbort);
    }
    stream.handle({ create_request: create });
  });
}

/** How a watchUntil ended: `seen` returned true, or the watch was lost (cancelled, compacted start). */
export type WatchEnd = 'seen' | 'lost';

/**
 * etcd's v3lock and v3election call their KV through an embedded clientv3, whose errors are not gRPC statuses: the
 * caller sees code Unknown with etcd's message (a Lock under a missing lease: Unknown, "etcdserver:
 * requested lease not found"; HTTP 500 on the gateway). Not-a-KeyraftError is a bug: rethrown as is.
 */
export function asEmbeddedClientError(err: unknown): unknown {
  if (err instanceof KeyraftError && err.code !== 'Canceled') return new KeyraftError('Unknown', err.message);
  return err;
}
