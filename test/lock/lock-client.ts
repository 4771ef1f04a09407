/**
 * A real gRPC client for etcd's Lock service: @grpc/grpc-js with @grpc/proto-loader reading our
 * protocol/etcd/v3lock.proto (etcd 3.4's wire facts), so the test does not go through our codec.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { join } from 'node:path';
import { protocolDir } from '../../src/platform/package-root.js';

const definition = protoLoader.loadSync(join(protocolDir, 'etcd', 'v3lock.proto'), {
  includeDirs: [protocolDir], keepCase: true, longs: String, bytes: Buffer, defaults: true,
});
const LockClientCtor = (grpc.loadPackageDefinition(definition) as any).v3lockpb.Lock as grpc.ServiceClientConstructor;

export interface LockReply { header: { revision: string }; key: Buffer }

export class LockClient {
  private readonly client: grpc.Client;

  constructor(port: number) {
    this.client = new LockClientCtor(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  }

  /** Lock(name, lease); `options.deadlineMs` sets a gRPC deadline; the returned call can be cancelled. */
  lock(name: string, lease: string, options: { deadlineMs?: number } = {}): { reply: Promise<LockReply>; cancel(): void } {
    let call: grpc.ClientUnaryCall | undefined;
    const reply = new Promise<LockReply>((resolve, reject) => {
      const callOptions = options.deadlineMs !== undefined ? { deadline: new Date(Date.now() + options.deadlineMs) } : {};
      call = (this.client as any).Lock({ name: Buffer.from(name), lease }, callOptions, (err: grpc.ServiceError | null, res: LockReply) => (err ? reject(err) : resolve(res)));
    });
    return { reply, cancel: () => call?.cancel() };
  }

  unlock(key: Buffer): Promise<unknown> {
    return new Promise((resolve, reject) => {
      (this.client as any).Unlock({ key }, (err: grpc.ServiceError | null, res: unknown) => (err ? reject(err) : resolve(res)));
    });
  }

  close(): void {
    this.client.close();
  }
}
