/** Shared by the API tests: start the client server over a MemoryMember, HTTP and gRPC helpers. */
import * as grpc from '@grpc/grpc-js';
import { Agent, request } from 'node:http';
import pino from 'pino';
import { Registry } from 'prom-client';
import { startClientServer, type ClientServer, type ClientServerOptions } from '../../src/api/client-server.js';
import { silentLogger, type Logger } from '../../src/platform/logger.js';
import type { ApiLimits } from '../../src/server/raft-kv.js';
import { MemoryMember } from './memory-member.js';

export interface Running {
  server: ClientServer;
  member: MemoryMember;
  registry: Registry;
}

/**
 * A member whose client server logs at warn and above into `logged`: the hostile-input suites
 * check that bad input is answered and never logged as a failure.
 */
export async function startWithLogCapture(): Promise<{ running: Running; logged: string[] }> {
  const logged: string[] = [];
  const running = await startWithMemoryMember({}, pino({ level: 'warn' }, { write: (line: string) => logged.push(line) }));
  return { running, logged };
}

export async function startWithMemoryMember(
  limits: Partial<ApiLimits> = {}, logger: Logger = silentLogger, options: Partial<ClientServerOptions> = {},
): Promise<Running> {
  const member = new MemoryMember(limits);
  const registry = new Registry();
  const server = await startClientServer({ member, host: '127.0.0.1', port: 0, logger, metricsRegistry: registry, ...options });
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

/**
 * Runs `attack` while asking GET /health over and over on a connection of its own, and reports the
 * slowest health answer: how long the attack held the event loop, as another client sees it. The
 * server runs in this process, so a stall freezes the prober too: each probe is timed from the end
 * of the previous one, which a stall cannot hide.
 */
export async function worstHealthLatency<T>(port: number, attack: () => Promise<T>): Promise<{ result: T; worstMs: number; probes: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  await httpRequest(port, 'GET', '/health', undefined, agent); // connected before the attack starts
  let done = false;
  let worstMs = 0;
  let probes = 0;
  const prober = (async () => {
    let last = performance.now();
    while (!done) {
      const reply = await httpRequest(port, 'GET', '/health', undefined, agent);
      if (reply.status !== 200) throw new Error(`/health answered ${reply.status}`);
      const now = performance.now();
      worstMs = Math.max(worstMs, now - last);
      last = now;
      probes++;
    }
  })();
  try {
    const result = await attack();
    return { result, worstMs, probes };
  } finally {
    done = true;
    await prober;
    agent.destroy();
  }
}
