/**
 * etcd 3.4's Lock service (v3lock), which is a thin server-side wrapper over clientv3's
 * concurrency.Mutex; this is the same recipe run against the member's own KV and watch, not a
 * network client, on the queue of ownership keys it shares with the Election service
 * (ownership-queue.ts: joinQueue, waitForOlderDeletes):
 *
 *   1. The contender's key is `<name>/<lease in hex>` with an empty value, under the caller's
 *      lease; the same lease asking again keeps the place its existing key has.
 *   2. The lock is held once no key under `<name>/` is older (smaller create revision); then the
 *      contender checks that its own key still exists (its lease may have ended meanwhile).
 *   3. Unlock deletes the key. A holder whose lease ends loses its key the same way.
 *
 * A Lock whose call ends before it holds the lock (client gone, deadline) deletes its waiting key,
 * as Mutex.Lock does when its context is cancelled, so it never blocks the queue behind it.
 */
import { KeyraftError } from '../platform/errors.js';
import type { LockRequest, LockResponse, ResponseHeader, UnlockRequest, UnlockResponse } from '../proto/etcd-types.js';
import type { Logger } from '../platform/logger.js';
import { asEmbeddedClientError, joinQueue, ownerKey, waitForOlderDeletes, type QueueKV } from './ownership-queue.js';

export class LockService {
  constructor(
    private readonly kv: QueueKV,
    private readonly logger: Logger,
  ) {}

  /** Blocks until `name` is held under `lease`; `signal` is the call's end (cancel or deadline). */
  async lock(request: LockRequest, signal?: AbortSignal): Promise<LockResponse> {
    try {
      return await this.acquire(request, signal);
    } catch (err) {
      throw asEmbeddedClientError(err);
    }
  }

  async unlock(request: UnlockRequest): Promise<UnlockResponse> {
    try {
      const response = await this.kv.deleteRange({ key: request.key ?? Buffer.alloc(0) });
      return { header: response.header };
    } catch (err) {
      throw asEmbeddedClientError(err);
    }
  }

  private async acquire(request: LockRequest, signal: AbortSignal | undefined): Promise<LockResponse> {
    const name = request.name ?? Buffer.alloc(0);
    const lease = request.lease ?? 0n;
    // clientv3's Mutex: pfx = name + "/", myKey = pfx + lease id in %x, empty value.
    const prefix = Buffer.concat([name, Buffer.from('/')]);
    const key = ownerKey(prefix, lease);
    const place = await joinQueue(this.kv, key, Buffer.alloc(0), lease);
    try {
      const header = await waitForOlderDeletes(this.kv, prefix, place.createRevision, signal);
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
}

function newer(a: ResponseHeader, b: ResponseHeader): ResponseHeader {
  return a.revision >= b.revision ? a : b;
}
