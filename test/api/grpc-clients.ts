/** grpc-js client definitions for the services the API layer serves, built from our codec. */
import * as grpc from '@grpc/grpc-js';
import { methodTable } from '../../src/api/methods.js';
import { HealthStatus, healthRequestService } from '../../src/api/health-service.js';
import { decode, encode, messageType } from '../../src/proto/codec.js';

function definition(service: string): grpc.ServiceDefinition {
  const def: Record<string, grpc.MethodDefinition<any, any>> = {};
  for (const row of methodTable) {
    if (row.service !== service || row.serve === undefined || row.codec !== undefined) continue;
    const reqType = messageType(`etcdserverpb.${row.requestType}`);
    const resType = messageType(`etcdserverpb.${row.responseType}`);
    def[row.method] = {
      path: `/etcdserverpb.${row.service}/${row.method}`,
      requestStream: row.kind === 'bidi',
      responseStream: row.kind !== 'unary',
      requestSerialize: (v: object) => Buffer.from(encode(reqType, v)),
      requestDeserialize: (b: Buffer) => decode(reqType, b),
      responseSerialize: (v: object) => Buffer.from(encode(resType, v)),
      responseDeserialize: (b: Buffer) => decode(resType, b),
    };
  }
  return def;
}

export const KvClient = grpc.makeGenericClientConstructor(definition('KV'), 'KV');
export const ClusterClient = grpc.makeGenericClientConstructor(definition('Cluster'), 'Cluster');
export const MaintenanceClient = grpc.makeGenericClientConstructor(definition('Maintenance'), 'Maintenance');

export const HealthClient = grpc.makeGenericClientConstructor({
  Check: {
    path: '/grpc.health.v1.Health/Check',
    requestStream: false,
    responseStream: false,
    requestSerialize: (r: { service?: string }) => (r.service ? Buffer.concat([Buffer.from([0x0a, Buffer.byteLength(r.service)]), Buffer.from(r.service)]) : Buffer.alloc(0)),
    requestDeserialize: (b: Buffer) => ({ service: healthRequestService(b) }),
    responseSerialize: (status: number) => Buffer.from([0x08, status]),
    responseDeserialize: (b: Buffer) => (b.length >= 2 ? b[1]! : 0),
  },
}, 'Health');

export { HealthStatus };

export function unary<T>(client: grpc.Client, name: string, request: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    (client as any)[name](request, (err: grpc.ServiceError | null, res: T) => (err ? reject(err) : resolve(res)));
  });
}
