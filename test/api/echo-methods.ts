/**
 * Test-only streaming RPCs, added to the method table as rows of their own (what a real streaming
 * RPC will be: one row and one handler), so the streaming suites drive the real client port:
 *
 *   etcdserverpb.Echo/Chat  (bidi)           request PutRequest {key: command, value}, responses RangeResponse {kvs: [{key, value}]}
 *   etcdserverpb.Echo/Count (server-stream)  request PutRequest {value: "<n>"}: n responses, then OK
 *
 * Chat commands (the request's key): "echo" answers {key: "echo", value}; "flood" sends messages
 * of `value` as a decimal size in bytes until `send` says false, then waits for onDrain and floods
 * once more; "greedy" sends 64 KiB messages ignoring `send`'s answer, up to 64 MiB; "end" ends the
 * call OK; "fail" ends it with the member's NoLeader error. The client's half-close ends the call
 * OK (as etcd's Watch does). What the handler saw is recorded in `probe` for the tests to check.
 */
import { KeyraftError } from '../../src/platform/errors.js';
import { methodTable, type MethodRow } from '../../src/api/methods.js';
import { rangeResponseJson } from '../../src/api/gateway-json.js';
import type { PutRequest, RangeResponse } from '../../src/proto/etcd-types.js';
import type { ServerStreamCall } from '../../src/grpc/grpc-method.js';

export interface EchoProbe {
  opened: number;
  messages: number;
  halfCloses: number;
  cancels: number;
  /** Bytes of responses the flood sent before `send` first said false. */
  floodBytesBeforeFalse: number;
  sendFalse: number;
  drains: number;
  /** Bytes the greedy producer offered before the call ended. */
  greedyBytes: number;
  lastMetadata: ReadonlyMap<string, string> | undefined;
}

export const probe: EchoProbe = newProbe();

function newProbe(): EchoProbe {
  return { opened: 0, messages: 0, halfCloses: 0, cancels: 0, floodBytesBeforeFalse: -1, sendFalse: 0, drains: 0, greedyBytes: 0, lastMetadata: undefined };
}

export function resetProbe(): void {
  Object.assign(probe, newProbe());
}

const header = { cluster_id: 1n, member_id: 2n, revision: 3, raft_term: 4 };
const answer = (key: string, value: Buffer): RangeResponse => ({ header, kvs: [{ key: Buffer.from(key), value, create_revision: 0, mod_revision: 0, version: 0, lease: 0n }], count: 1, more: false });

function openChat(call: ServerStreamCall<RangeResponse>) {
  probe.opened++;
  probe.lastMetadata = call.metadata;
  call.onCancel(() => probe.cancels++);
  let floodSize = 0;
  let sentBytes = 0;
  const flood = (): void => {
    for (;;) {
      sentBytes += floodSize;
      if (!call.send(answer('flood', Buffer.alloc(floodSize, 0x61)))) {
        probe.sendFalse++;
        if (probe.floodBytesBeforeFalse < 0) probe.floodBytesBeforeFalse = sentBytes;
        return;
      }
    }
  };
  call.onDrain(() => {
    probe.drains++;
    if (probe.drains === 1 && floodSize > 0) flood();
  });
  return {
    onMessage(request: PutRequest): void {
      probe.messages++;
      const command = Buffer.from(request.key ?? []).toString();
      const value = Buffer.from(request.value ?? []);
      switch (command) {
        case 'echo':
          call.send(answer('echo', value));
          return;
        case 'flood':
          floodSize = Number(value.toString());
          flood();
          return;
        case 'greedy': {
          const chunk = Buffer.alloc(64 * 1024, 0x62);
          while (!call.ended && probe.greedyBytes < 64 * 1024 * 1024) {
            probe.greedyBytes += chunk.length;
            call.sendEncoded(chunk);
          }
          return;
        }
        case 'end':
          call.end();
          return;
        case 'fail':
          call.end(new KeyraftError('NoLeader'));
          return;
      }
    },
    onHalfClose(): void {
      probe.halfCloses++;
      call.end();
    },
  };
}

function openCount(call: ServerStreamCall<RangeResponse>) {
  probe.opened++;
  call.onCancel(() => probe.cancels++);
  return {
    onMessage(request: PutRequest): void {
      probe.messages++;
      const n = Number(Buffer.from(request.value ?? []).toString());
      for (let i = 0; i < n; i++) call.send(answer(`count/${i}`, Buffer.from(String(i))));
      call.end();
    },
  };
}

export const echoRows: MethodRow[] = [
  { kind: 'bidi', service: 'Echo', method: 'Chat', gatewayPaths: ['/v3/test/echo/chat'], requestType: 'PutRequest', responseType: 'RangeResponse', jsonEncoder: rangeResponseJson, serve: () => openChat },
  { kind: 'server-stream', service: 'Echo', method: 'Count', gatewayPaths: ['/v3/test/echo/count'], requestType: 'PutRequest', responseType: 'RangeResponse', jsonEncoder: rangeResponseJson, serve: () => openCount },
];

/** etcd's table plus the echo rows. */
export const tableWithEcho: readonly MethodRow[] = [...methodTable, ...echoRows];
