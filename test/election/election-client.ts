/**
 * A real gRPC client for etcd's Election service: @grpc/grpc-js with @grpc/proto-loader reading our
 * protocol/etcd/v3election.proto (etcd 3.4's wire facts), so the tests do not go through our codec.
 * Works against keyraft and a real etcd alike.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { join } from 'node:path';
import { protocolDir } from '../../src/platform/package-root.js';

const definition = protoLoader.loadSync(join(protocolDir, 'etcd', 'v3election.proto'), {
  includeDirs: [protocolDir], keepCase: true, longs: String, bytes: Buffer, defaults: true,
});
const ElectionCtor = (grpc.loadPackageDefinition(definition) as any).v3electionpb.Election as grpc.ServiceClientConstructor;

export interface Header { revision: string }
export interface LeaderKey { name: Buffer; key: Buffer; rev: string; lease: string }
export interface Kv { key: Buffer; value: Buffer; create_revision: string; mod_revision: string; version: string; lease: string }
export interface CampaignReply { header: Header; leader: LeaderKey }
export interface LeaderReply { header: Header; kv: Kv }

/** A failed call as the test compares it: gRPC code and message. */
export function failureOf(err: unknown): string {
  const e = err as grpc.ServiceError;
  return `code ${e.code} ${e.details}`;
}

export class ElectionClient {
  private readonly client: grpc.Client;

  constructor(port: number) {
    this.client = new ElectionCtor(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  }

  /** Campaign; the returned call can be cancelled while it waits. */
  campaign(name: string, lease: string, value: string): { reply: Promise<CampaignReply>; cancel(): void } {
    let call: grpc.ClientUnaryCall | undefined;
    const reply = new Promise<CampaignReply>((resolve, reject) => {
      call = (this.client as any).Campaign({ name: Buffer.from(name), lease, value: Buffer.from(value) },
        (err: grpc.ServiceError | null, res: CampaignReply) => (err ? reject(err) : resolve(res)));
    });
    return { reply, cancel: () => call?.cancel() };
  }

  proclaim(leader: LeaderKey | undefined, value: string): Promise<{ header: Header }> {
    return this.unary('Proclaim', { leader, value: Buffer.from(value) });
  }

  leader(name: string): Promise<LeaderReply> {
    return this.unary('Leader', { name: Buffer.from(name) });
  }

  resign(leader: LeaderKey | undefined): Promise<{ header: Header }> {
    return this.unary('Resign', { leader });
  }

  /** Observe: every response into `seen`, until cancel(). */
  observe(name: string, seen: (reply: LeaderReply) => void): { cancel(): void; ended: Promise<string> } {
    const call = (this.client as any).Observe({ name: Buffer.from(name) }) as grpc.ClientReadableStream<LeaderReply>;
    call.on('data', seen);
    const ended = new Promise<string>((resolve) => {
      call.on('error', (err: grpc.ServiceError) => resolve(failureOf(err)));
      call.on('end', () => resolve('end'));
    });
    return { cancel: () => call.cancel(), ended };
  }

  close(): void {
    this.client.close();
  }

  private unary<T>(method: string, request: object): Promise<T> {
    return new Promise((resolve, reject) => {
      (this.client as any)[method](request, (err: grpc.ServiceError | null, res: T) => (err ? reject(err) : resolve(res)));
    });
  }
}
