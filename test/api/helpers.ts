/** Shared by the API tests: start the client server over a MemoryMember, HTTP and gRPC helpers. */
import * as grpc from '@grpc/grpc-js';
import { Agent, request } from 'node:http';
import { Registry } from 'prom-client';
import { startClientServer, type ClientServer } from '../../src/api/client-server.js';
import type { Http2Timing } from '../../src/api/http2-connection.js';
import { silentLogger } from '../../src/platform/logger.js';
import type { ApiLimits } from '../../src/server/raft-kv.js';
import { MemoryMember } from './memory-member.js';

export interface Running {
  server: ClientServer;
  member: MemoryMember;
  registry: Registry;
}

export async function startWithMemoryMember(limits: Partial<ApiLimits> = {}, http2Timing?: Partial<Http2Timing>, http2RequestBytesBufferedMax?: number): Promise<Running> {
  const member = new MemoryMember(limits);
  const registry = new Registry();
  const server = await startClientServer({ member, host: '127.0.0.1', port: 0, logger: silentLogger, metricsRegistry: registry, http2Timing, http2RequestBytesBufferedMax });
  return { server, member, registry };
}

export const keepAliveAgent = new Agent({ keepAlive: true, maxSockets: 8 });

export interface HttpReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export function httpRequest(port: number, method: string, path: string, body?: string | Buffer, agent: Agent = keepAliveAgent): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

export const b64 = (s: string | Buffer): string => Buffer.from(s).toString('base64');

/** A generic gRPC client whose methods take and return raw protobuf bytes. */
export function rawClient(port: number): grpc.Client {
  return new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
}

export const identity = (b: Buffer): Buffer => b;
