/**
 * A grpc-js client of etcd's Lease service built from our codec (unary Grant, Revoke,
 * TimeToLive, Leases; the bidi LeaseKeepAlive as a long-lived stream), and KV Put/Range for
 * the keys under the leases. For the cluster lease tests and the lease benchmark.
 */
import * as grpc from '@grpc/grpc-js';
import { decode, encode, messageType } from '../../src/proto/codec.js';

function method(service: string, name: string, req: string, res: string, streaming = false): grpc.MethodDefinition<any, any> {
  const reqType = messageType(`etcdserverpb.${req}`);
  const resType = messageType(`etcdserverpb.${res}`);
  return {
    path: `/etcdserverpb.${service}/${name}`,
    requestStream: streaming,
    responseStream: streaming,
    requestSerialize: (v: object) => Buffer.from(encode(reqType, v)),
    requestDeserialize: (b: Buffer) => decode(reqType, b),
    responseSerialize: (v: object) => Buffer.from(encode(resType, v)),
    responseDeserialize: (b: Buffer) => decode(resType, b),
  };
}

const LeaseClientCtor = grpc.makeGenericClientConstructor({
  LeaseGrant: method('Lease', 'LeaseGrant', 'LeaseGrantRequest', 'LeaseGrantResponse'),
  LeaseRevoke: method('Lease', 'LeaseRevoke', 'LeaseRevokeRequest', 'LeaseRevokeResponse'),
  LeaseTimeToLive: method('Lease', 'LeaseTimeToLive', 'LeaseTimeToLiveRequest', 'LeaseTimeToLiveResponse'),
  LeaseLeases: method('Lease', 'LeaseLeases', 'LeaseLeasesRequest', 'LeaseLeasesResponse'),
  LeaseKeepAlive: method('Lease', 'LeaseKeepAlive', 'LeaseKeepAliveRequest', 'LeaseKeepAliveResponse', true),
}, 'Lease');

const KvClientCtor = grpc.makeGenericClientConstructor({
  Put: method('KV', 'Put', 'PutRequest', 'PutResponse'),
  Range: method('KV', 'Range', 'RangeRequest', 'RangeResponse'),
}, 'KV');

function unary<T>(client: grpc.Client, name: string, request: unknown, deadlineMs = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    (client as any)[name](request, { deadline: Date.now() + deadlineMs }, (err: grpc.ServiceError | null, res: T) => (err ? reject(err) : resolve(res)));
  });
}

export interface KeepAliveStream {
  /** Sends one keep-alive; resolves with its response's TTL (0: unknown or expired lease). */
  keepAlive(id: bigint): Promise<number>;
  /** Fire-and-forget keep-alive (the benchmark's load); responses counted in `answered`. */
  send(id: bigint): void;
  readonly answered: number;
  close(): void;
}

export class LeaseGrpc {
  private readonly lease: grpc.Client;
  private readonly kv: grpc.Client;

  constructor(port: number) {
    const options = { 'grpc.initial_reconnect_backoff_ms': 50, 'grpc.max_reconnect_backoff_ms': 200 };
    this.lease = new LeaseClientCtor(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), options);
    this.kv = new KvClientCtor(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), options);
  }

  grant(ttl: number, id = 0n): Promise<{ ID: bigint; TTL: number }> {
    return unary(this.lease, 'LeaseGrant', { TTL: ttl, ID: id });
  }

  revoke(id: bigint): Promise<unknown> {
    return unary(this.lease, 'LeaseRevoke', { ID: id });
  }

  timeToLive(id: bigint, keys = false): Promise<{ TTL: number; grantedTTL: number; keys: Buffer[] }> {
    return unary(this.lease, 'LeaseTimeToLive', { ID: id, keys });
  }

  leases(): Promise<{ leases: Array<{ ID: bigint }> }> {
    return unary(this.lease, 'LeaseLeases', {});
  }

  put(key: string, value: string, lease: bigint): Promise<unknown> {
    return unary(this.kv, 'Put', { key: Buffer.from(key), value: Buffer.from(value), lease });
  }

  async get(key: string): Promise<{ create_revision: number; version: number; lease: bigint } | undefined> {
    const r = await unary<{ kvs: Array<{ create_revision: number; version: number; lease: bigint }> }>(this.kv, 'Range', { key: Buffer.from(key) });
    return r.kvs?.[0];
  }

  /** One LeaseKeepAlive stream; responses are matched to requests in order. */
  keepAliveStream(): KeepAliveStream {
    const call = (this.lease as any).LeaseKeepAlive() as grpc.ClientDuplexStream<{ ID: bigint }, { ID: bigint; TTL: number }>;
    const waiting: Array<{ resolve: (ttl: number) => void; reject: (err: Error) => void }> = [];
    let answered = 0;
    let failure: Error | undefined;
    call.on('data', (res) => {
      answered++;
      waiting.shift()?.resolve(Number(res.TTL ?? 0));
    });
    const fail = (err: Error) => {
      failure ??= err;
      for (const w of waiting.splice(0)) w.reject(err);
    };
    call.on('error', fail);
    call.on('end', () => fail(new Error('keep-alive stream ended')));
    return {
      keepAlive(id) {
        if (failure) return Promise.reject(failure);
        return new Promise((resolve, reject) => {
          waiting.push({ resolve, reject });
          call.write({ ID: id });
        });
      },
      send(id) {
        if (!failure) call.write({ ID: id });
      },
      get answered() { return answered; },
      close() { call.end(); call.cancel(); },
    };
  }

  close(): void {
    this.lease.close();
    this.kv.close();
  }
}
