/**
 * etcd's Watch service on a streaming call (gRPC bidi, or the gateway's POST /v3/watch): each
 * request message goes to the member's watch stream (server/raft-kv.ts WatchApi, with etcd's
 * semantics in watch/watch-stream.ts); its responses come back already encoded and go out as
 * they are (sendEncoded: an event is encoded once per revision, not per watcher or per call).
 *
 * Flow control is the call's: `sendEncoded` returning false stops events for the stream until
 * onDrain (its watchers fall back to history meanwhile). The client half-closing its side does
 * not end the call, as in etcd (the server keeps sending until the client goes); the client
 * going away (onCancel) removes every watcher of the stream.
 */
import type { ServerStreamCall, StreamHandler } from '../grpc/grpc-method.js';
import type { WatchRequest, WatchResponse } from '../proto/etcd-types.js';
import type { WatchApi } from '../server/raft-kv.js';

export function openWatch(member: WatchApi, call: ServerStreamCall<WatchResponse>): StreamHandler<WatchRequest> {
  const stream = member.openWatchStream({
    send: (message) => call.sendEncoded(message),
    onDrain: (listener) => call.onDrain(listener),
    end: (error) => call.end(error),
  });
  call.onCancel(() => stream.close());
  return {
    onMessage: (request) => stream.handle(request),
  };
}
