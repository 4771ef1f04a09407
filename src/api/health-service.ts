/**
 * The standard gRPC health service (grpc.health.v1.Health/Check), which etcd 3.4 registers on its
 * client port and load balancers and proxies probe. Its two messages are tiny and not in our
 * protocol/ protos, so they are encoded by hand here:
 *   HealthCheckRequest  { string service = 1; }     -> we read `service`
 *   HealthCheckResponse { ServingStatus status = 1; } SERVING = 1, NOT_SERVING = 2
 * The whole server ("") is SERVING while the member has a leader. A named service is NOT_FOUND, as
 * etcd registers none. Watch (streaming) is not served: grpc-js answers it UNIMPLEMENTED.
 */
import * as grpc from '@grpc/grpc-js';
import type { MemberApi } from '../server/raft-kv.js';

const SERVING = 1;
const NOT_SERVING = 2;

/** Reads field 1 (a string) of a HealthCheckRequest; absent means "". */
export function healthRequestService(bytes: Buffer): string {
  let i = 0;
  while (i < bytes.length) {
    const tag = bytes[i++]!;
    if ((tag & 7) !== 2) return ''; // only length-delimited fields are expected
    let length = 0;
    let shift = 0;
    for (;;) {
      const b = bytes[i++];
      if (b === undefined) return '';
      length += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if (b < 0x80) break;
    }
    if (tag >>> 3 === 1) return bytes.subarray(i, i + length).toString('utf8');
    i += length;
  }
  return '';
}

export const healthServiceDefinition: grpc.ServiceDefinition = {
  Check: {
    path: '/grpc.health.v1.Health/Check',
    requestStream: false,
    responseStream: false,
    originalName: 'check',
    requestSerialize: (request: { service?: string }) => (request.service
      ? Buffer.concat([Buffer.from([0x0a, Buffer.byteLength(request.service)]), Buffer.from(request.service)])
      : Buffer.alloc(0)),
    requestDeserialize: (bytes: Buffer) => ({ service: healthRequestService(bytes) }),
    responseSerialize: (status: number) => Buffer.from([0x08, status]),
    responseDeserialize: (bytes: Buffer) => (bytes.length >= 2 ? bytes[1]! : 0),
  },
};

export function addHealthService(server: grpc.Server, member: MemberApi): void {
  server.addService(healthServiceDefinition, {
    Check: (call: grpc.ServerUnaryCall<{ service: string }, number>, callback: grpc.sendUnaryData<number>) => {
      if (call.request.service !== '') {
        callback({ code: grpc.status.NOT_FOUND, details: 'unknown service' } as grpc.ServiceError);
        return;
      }
      callback(null, member.isHealthy() ? SERVING : NOT_SERVING);
    },
  });
}
