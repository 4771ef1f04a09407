/**
 * The standard gRPC health service (grpc.health.v1.Health/Check), which etcd 3.4 registers on its
 * client port and load balancers and proxies probe. Its two messages are tiny and not in our
 * protocol/ protos, so they are encoded by hand here:
 *   HealthCheckRequest  { string service = 1; }     -> we read `service`
 *   HealthCheckResponse { ServingStatus status = 1; } SERVING = 1, NOT_SERVING = 2
 * The whole server ("") is SERVING while the member has a leader. A named service is NOT_FOUND, as
 * etcd registers none. Its row (the handler) is in methods.ts; this file holds the hand-made codec.
 */

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
