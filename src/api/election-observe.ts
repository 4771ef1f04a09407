/**
 * Election.Observe (a server-stream row of methods.ts): the one LeaderRequest starts the member's
 * observation (server/election-service.ts), whose LeaderResponses are this call's messages. The
 * call's end (client gone, reset, deadline) aborts the observation; an observation that ends by
 * itself (its watch lost, as etcd's Observe when clientv3's channel closes) ends the call with OK,
 * a failure with its error. Flow control: a full call makes the observation wait for onDrain.
 */
import type { ServerStreamCall, StreamHandler } from '../grpc/grpc-method.js';
import type { LeaderRequest, LeaderResponse } from '../proto/etcd-types.js';
import type { ElectionApi, LeaderSink } from '../server/raft-kv.js';

export function openObserve(member: ElectionApi, call: ServerStreamCall<LeaderResponse>): StreamHandler<LeaderRequest> {
  const abort = new AbortController();
  let wake: (() => void) | null = null;
  const resume = (): void => {
    const w = wake;
    wake = null;
    w?.();
  };
  call.onDrain(resume);
  call.onCancel(() => {
    abort.abort();
    resume();
  });
  const sink: LeaderSink = {
    send: (response) => call.send(response),
    drained: () => (call.ended ? Promise.resolve() : new Promise<void>((resolve) => { wake = resolve; })),
  };
  let started = false;
  return {
    onMessage(request) {
      if (started) return;
      started = true;
      member.observe(request, sink, abort.signal).then(
        () => call.end(),
        (err: unknown) => call.end(err),
      );
    },
  };
}
