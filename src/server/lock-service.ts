/**
 * etcd 3.4's Lock service (v3lock), which is a thin server-side wrapper over clientv3's
 * concurrency.Mutex; this is the same recipe run against the member's own KV and watch, not a
 * network client:
 *
 *   1. The contender's key is `<name>/<lease in hex>`, written by a txn that puts it (empty value,
 *      under the caller's lease) only if its create_revision is 0; if it exists already (the same
 *      lease asking again), its existing create revision is the contender's place in the queue.
 *   2. The lock is held when no key under `<name>/` has a smaller create revision. Until then the
 *      contender waits for the deletion of the newest key older than its own (range with
 *      max_create_revision = mine - 1, sorted by create revision descending, limit 1), then looks
 *      again: each contender watches exactly one other key, so releasing wakes one waiter.
 *   3. Unlock deletes the key. A holder whose lease ends loses its key the same way.
 *
 * Worked example: leases 0x1a and 0x2b call Lock("job"). 0x1a's txn creates job/1a at rev 5
 * and finds nothing older: it holds. 0x2b creates job/2b at rev 6, finds job/1a (create rev 5)
 * and watches it from rev 6; Unlock(job/1a) deletes it at rev 7, the watch sees the DELETE,
 * 0x2b looks again, finds nothing older than 6, and returns key job/2b with the header of rev 7.
 *
 * A Lock whose call ends before it holds the lock (client gone, deadline) deletes its waiting key,
 * as Mutex.Lock does when its context is cancelled, so it never blocks the queue behind it.
 */
import { KeyraftError } from '../platform/errors.js';
import { decode, messageType } from '../proto/codec.js';
import { prefixEnd } from '../proto/key-range.js';
import {
  CompareResult, CompareTarget, EventType, SortOrder, SortTarget,
  type LockRequest, type LockResponse, type ResponseHeader, type UnlockRequest, type UnlockResponse, type WatchResponse,
} from '../proto/etcd-types.js';
import type { Logger } from '../platform/logger.js';
import type { RaftKV, WatchApi } from './raft-kv.js';

const watchResponseType = messageType('etcdserverpb.WatchResponse');

export class LockService {
  constructor(
    private readonly kv: RaftKV & WatchApi,
    private readonly logger: Logger,
  ) {}

  /** Blocks until `name` is held under `lease`; `signal` is the call's end (cancel or deadline). */
  async lock(request: LockRequest, signal?: AbortSignal): Promise<LockResponse> {
    try {
      return await this.acquire(request, signal);
    } catch (err) {
      throw asClientError(err);
    }
  }

  async unlock(request: UnlockRequest): Promise<UnlockResponse> {
    try {
      const response = await this.kv.deleteRange({ key: request.key ?? Buffer.alloc(0) });
      return { header: response.header };
    } catch (err) {
      throw asClientError(err);
    }
  }

  private async acquire(request: LockRequest, signal: AbortSignal | undefined): Promise<LockResponse> {
    const name = request.name ?? Buffer.alloc(0);
    const lease = request.lease ?? 0n;
    // clientv3's Mutex: pfx = name + "/", myKey = pfx + lease id in %x.
    const prefix = Buffer.concat([name, Buffer.from('/')]);
    const key = Buffer.concat([prefix, Buffer.from(BigInt.asUintN(64, lease).toString(16))]);
    const created = await this.kv.txn({
      compare: [{ key, target: CompareTarget.CREATE, result: CompareResult.EQUAL, create_revision: 0 }],
      success: [{ request_put: { key, value: Buffer.alloc(0), lease } }],
      failure: [{ request_range: { key } }],
    });
    let myRevision = created.header!.revision;
    if (!created.succeeded) {
      const existing = created.responses[0]?.response_range?.kvs[0];
      // Deleted between the compare and now cannot happen inside one txn: the failure branch read it.
      if (existing === undefined) throw new KeyraftError('Internal', `lock key ${key.toString()} vanished inside its txn`);
      myRevision = existing.create_revision;
    }
    try {
      const header = await this.waitForOlderDeletes(prefix, myRevision, signal);
      // Our own key may have gone meanwhile (lease expired or revoked): then we hold nothing.
      const own = await this.kv.range({ key, count_only: true });
      if (own.count === 0) throw new KeyraftError('LeaseNotFound');
      return { header: newer(header, own.header!), key };
    } catch (err) {
      // As Mutex.Lock on a cancelled context: give up our place so the queue moves on.
      try {
        await this.kv.deleteRange({ key });
      } catch (cleanupErr) {
        // The caller's own failure is what it sees; the key stays until its lease ends (etcd the same).
        this.logger.warn({ err: cleanupErr, key: key.toString() }, 'could not delete the key of an abandoned Lock');
      }
      throw err;
    }
  }

  /** Waits until no key under `prefix` has a create revision below `myRevision`; the last header seen. */
  private async waitForOlderDeletes(prefix: Buffer, myRevision: number, signal: AbortSignal | undefined): Promise<ResponseHeader> {
    for (;;) {
      if (signal?.aborted) throw cancelled();
      const older = await this.kv.range({
        key: prefix, range_end: prefixEnd(prefix), max_create_revision: myRevision - 1,
        sort_order: SortOrder.DESCEND, sort_target: SortTarget.CREATE, limit: 1,
      });
      const last = older.kvs[0];
      if (last === undefined) return older.header!;
      await this.waitForDelete(last.key, older.header!.revision, signal);
    }
  }

  /** Resolves once `key` is deleted at or after `fromRevision` + 1 (a watch from the range's revision). */
  private waitForDelete(key: Buffer, atRevision: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const finish = (err?: unknown): void => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        stream.close();
        if (err === undefined) resolve();
        else reject(err);
      };
      const onAbort = (): void => finish(cancelled());
      const stream = this.kv.openWatchStream({
        send: (message) => {
          const response = decode(watchResponseType, Buffer.from(message)) as WatchResponse;
          // A compacted start means the key may be gone already: looking again is always safe.
          if (response.canceled || response.compact_revision > 0) finish();
          else if (response.events?.some((e) => e.type === EventType.DELETE)) finish();
          return true;
        },
        onDrain: () => undefined,
        end: (error) => finish(error ?? new KeyraftError('Stopped')),
      });
      if (signal !== undefined) {
        if (signal.aborted) {
          finish(cancelled());
          return;
        }
        signal.addEventListener('abort', onAbort);
      }
      // From the revision after the one the range saw: a delete in between is not missed.
      stream.handle({ create_request: { key, start_revision: atRevision + 1 } });
    });
  }
}

/**
 * etcd's v3lock calls its KV through an embedded clientv3, whose errors are not gRPC statuses: the
 * caller sees code Unknown with etcd's message (a Lock under a missing lease: Unknown, "etcdserver:
 * requested lease not found"; HTTP 500 on the gateway). Not-a-KeyraftError is a bug: rethrown as is.
 */
function asClientError(err: unknown): unknown {
  if (err instanceof KeyraftError && err.code !== 'Canceled') return new KeyraftError('Unknown', err.message);
  return err;
}

function cancelled(): KeyraftError {
  return new KeyraftError('Canceled');
}

function newer(a: ResponseHeader, b: ResponseHeader): ResponseHeader {
  return a.revision >= b.revision ? a : b;
}
