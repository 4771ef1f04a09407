/**
 * etcd's Watch service on a streaming call (gRPC bidi, or the gateway's POST /v3/watch): each
 * request message goes to the member's watch stream (server/raft-kv.ts WatchApi, with etcd's
 * semantics in watch/watch-stream.ts); its responses come back already encoded and go out as
 * they are (sendEncoded: an event is encoded once per revision, not per watcher or per call; on
 * gRPC, sendFramed: a revision's responses to several watchers of the stream in one write).
 *
 * Flow control is the call's: `sendEncoded` returning false stops events for the stream until
 * onDrain (its watchers fall back to history meanwhile). The client half-closing its side does
 * not end the call, as in etcd (the server keeps sending until the client goes); the client
 * going away (onCancel) removes every watcher of the stream.
 *
 * Bound: a client connection holds at most Limits.watchStreamsPerConnectionMax Watch calls at
 * once; one more ends at once with RESOURCE_EXHAUSTED and a message naming the limit (etcd has
 * no such bound, so no etcd text to copy; its clients open one stream per context and put many
 * watchers on it).
 */
import type { ServerStreamCall, StreamHandler } from '../grpc/grpc-method.js';
import { KeyraftError } from '../platform/errors.js';
import { Limits } from '../platform/limits.js';
import type { WatchRequest, WatchResponse } from '../proto/etcd-types.js';
import type { WatchApi } from '../server/raft-kv.js';

/** The text a Watch call past the per-connection bound ends with (RESOURCE_EXHAUSTED). */
export const ERR_TOO_MANY_WATCH_STREAMS = `keyraft: too many watch streams on this connection (limit ${Limits.watchStreamsPerConnectionMax}, watchStreamsPerConnectionMax)`;

/** The Watch method of one server: opens a stream per call, counting them per client connection. */
export function watchService(member: WatchApi): (call: ServerStreamCall<WatchResponse>) => StreamHandler<WatchRequest> {
  const openByConnection = new WeakMap<object, number>();
  return (call) => openWatch(member, call, openByConnection);
}

const IGNORE_REQUESTS: StreamHandler<WatchRequest> = { onMessage: () => undefined };

function openWatch(member: WatchApi, call: ServerStreamCall<WatchResponse>, openByConnection: WeakMap<object, number>): StreamHandler<WatchRequest> {
  const connection = call.connection;
  let counted = false;
  if (connection !== undefined) {
    const open = openByConnection.get(connection) ?? 0;
    if (open >= Limits.watchStreamsPerConnectionMax) {
      call.end(new KeyraftError('TooManyRequests', ERR_TOO_MANY_WATCH_STREAMS));
      return IGNORE_REQUESTS;
    }
    openByConnection.set(connection, open + 1);
    counted = true;
  }
  // Once per call, however it ends: the client went away, or the member ended the stream.
  const uncount = (): void => {
    if (!counted || connection === undefined) return;
    counted = false;
    const open = openByConnection.get(connection)! - 1;
    if (open === 0) openByConnection.delete(connection);
    else openByConnection.set(connection, open);
  };
  const stream = member.openWatchStream({
    send: (message) => call.sendEncoded(message),
    // gRPC calls take a revision's responses to several watchers as one framed write.
    sendFramed: call.sendFramed === undefined ? undefined : (framed, messages) => call.sendFramed!(framed, messages),
    // ... and writes them straight into the connection's output when the stream can send them now.
    sendPieces: call.sendPieces === undefined ? undefined : (bytes, messages, largest, writer) => call.sendPieces!(bytes, messages, largest, writer),
    onDrain: (listener) => call.onDrain(listener),
    end: (error) => {
      uncount();
      call.end(error);
    },
  });
  call.onCancel(() => {
    uncount();
    stream.close();
  });
  return {
    onMessage: (request) => stream.handle(request),
  };
}
