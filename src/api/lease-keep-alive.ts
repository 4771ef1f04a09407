import type { ServerStreamCall, StreamHandler } from '../grpc/grpc-method.js';
import type { LeaseKeepAliveRequest, LeaseKeepAliveResponse } from '../proto/etcd-types.js';
import type { LeaseApi } from '../server/raft-kv.js';

/**
 * One LeaseKeepAlive stream (etcd's v3rpc LeaseServer.leaseKeepAlive): each request renews one
 * lease and gets one response {header, ID, TTL}, TTL 0 when the lease is unknown or expired. Any
 * other failure (no leader, the member stopping) ends the stream with that error, as etcd's
 * does; the client reopens it. When the client half-closes, the stream ends OK once every
 * renewal asked for has been answered.
 *
 * Renewals run concurrently and are answered as each completes: on the leader they complete in
 * order anyway; on a follower each is forwarded to the leader. etcd answers one at a time.
 */

export function openKeepAlive(member: LeaseApi, call: ServerStreamCall<LeaseKeepAliveResponse>): StreamHandler<LeaseKeepAliveRequest> {
  let inFlight = 0;
  let halfClosed = false;
  let ended = false;
  const finish = (error?: unknown) => {
    if (ended) return;
    ended = true;
    call.end(error);
  };
  call.onCancel(() => { ended = true; });
  return {
    onMessage(request) {
      if (ended) return;
      inFlight++;
      member.leaseKeepAlive(request).then(
        (response) => {
          inFlight--;
          if (ended || call.cancelled) return;
          call.send(response);
          if (halfClosed && inFlight === 0) finish();
        },
        (err: unknown) => {
          inFlight--;
          finish(err);
        },
      );
    },
    onHalfClose() {
      halfClosed = true;
      if (inFlight === 0) finish();
    },
  };
}
