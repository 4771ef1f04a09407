/**
 * The standard gRPC health service (grpc.health.v1.Health/Check), which etcd 3.4 registers on its
 * client port and load balancers and proxies probe. Its two messages are tiny and not in our
 * protocol/ protos, so they are encoded by hand here:
 *   HealthCheckRequest  { string service = 1; }     -> we read `service`
 *   HealthCheckResponse { ServingStatus status = 1; } SERVING = 1, NOT_SERVING = 2
 * The whole server ("") is SERVING while the member has a leader. A named service is NOT_FOUND, as
 * etcd registers none. Watch (streaming) is not served: it answers UNIMPLEMENTED.
 */
import { KeyraftError } from '../platform/errors.js';
import type { MemberApi } from '../server/raft-kv.js';
import type { GrpcServer } from '../grpc/grpc-server.js';

export const HealthStatus = { SERVING: 1, NOT_SERVING: 2 } as const;

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

export function addHealthService(server: GrpcServer, member: MemberApi): void {
  server.addMethod({
    service: 'grpc.health.v1.Health',
    method: 'Check',
    decode: healthRequestService,
    encode: (status: number) => Uint8Array.of(0x08, status),
    handle: async (service: string) => {
      // grpc-go's health server says exactly this for a service it does not know.
      if (service !== '') throw new KeyraftError('NotFoundPath', 'unknown service');
      return member.isHealthy() ? HealthStatus.SERVING : HealthStatus.NOT_SERVING;
    },
  });
}
