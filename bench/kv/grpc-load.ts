/**
 * A closed-loop gRPC load generator on node:http2: `connections` HTTP/2 sessions, each keeping
 * `streamsPerConnection` unary calls in flight (a finished call starts the next at once), for
 * `durationSeconds`. Request bodies are protobuf bytes built by the scenario, framed here as gRPC
 * length-prefixed messages (1 byte compressed flag, 4 bytes big-endian length).
 *
 * This is not grpc-js: its client costs 110-140 µs of CPU per call on these machines (DESIGN.md),
 * which on 2 shared cores would measure the client more than the server. A raw h2 stream with a
 * prebuilt body is the cheapest honest client: the same bytes any gRPC client sends, and the
 * answer's grpc-status (in the trailers, or in the headers of a trailers-only answer) decides
 * success. Latency is per call, from request to end of the answer.
 */
import * as http2 from 'node:http2';
import type { Measurement } from './side-by-side.js';

export interface GrpcLoadOptions {
  port: number;
  /** e.g. '/etcdserverpb.KV/Put' */
  path: string;
  /** The protobuf request for the next call (called once per call). */
  nextRequest: () => Uint8Array;
  connections: number;
  streamsPerConnection: number;
  durationSeconds: number;
}

export function grpcFrame(message: Uint8Array): Buffer {
  const framed = Buffer.allocUnsafe(5 + message.length);
  framed[0] = 0;
  framed.writeUInt32BE(message.length, 1);
  framed.set(message, 5);
  return framed;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

export async function runGrpcLoad(options: GrpcLoadOptions): Promise<Measurement> {
  const latenciesMs: number[] = [];
  let errors = 0;
  let failed = 0;
  let running = true;
  const sessions: http2.ClientHttp2Session[] = [];
  const headers = { ':method': 'POST', ':path': options.path, 'content-type': 'application/grpc', te: 'trailers' };
  let inFlight = 0;
  let allDone: () => void = () => {};
  const drained = new Promise<void>((resolve) => { allDone = resolve; });

  const callOn = (session: http2.ClientHttp2Session): void => {
    if (!running || session.destroyed) {
      if (inFlight === 0) allDone();
      return;
    }
    inFlight++;
    const started = performance.now();
    let status: string | undefined;
    const stream = session.request(headers);
    stream.on('response', (h) => { if (h['grpc-status'] !== undefined) status = String(h['grpc-status']); });
    stream.on('trailers', (t) => { if (t['grpc-status'] !== undefined) status = String(t['grpc-status']); });
    stream.on('data', () => {});
    let finished = false;
    const finish = (transportError: boolean) => {
      if (finished) return;
      finished = true;
      inFlight--;
      if (transportError) errors++;
      else if (status !== '0') failed++;
      else latenciesMs.push(performance.now() - started);
      callOn(session);
    };
    stream.on('error', () => finish(true));
    stream.on('close', () => finish(false));
    stream.end(grpcFrame(options.nextRequest()));
  };

  for (let c = 0; c < options.connections; c++) {
    const session = http2.connect(`http://127.0.0.1:${options.port}`);
    session.on('error', () => {}); // counted per stream
    await new Promise<void>((resolve, reject) => {
      session.once('connect', () => resolve());
      session.once('error', reject);
    });
    sessions.push(session);
  }
  const startedAt = performance.now();
  for (const session of sessions) {
    for (let s = 0; s < options.streamsPerConnection; s++) callOn(session);
  }
  await new Promise((resolve) => setTimeout(resolve, options.durationSeconds * 1000));
  running = false;
  const elapsedSeconds = (performance.now() - startedAt) / 1000;
  const completed = latenciesMs.length;
  // Let the calls in flight finish (a few ms), so sessions close cleanly; never wait long.
  let drainTimer: NodeJS.Timeout | undefined;
  await Promise.race([drained, new Promise((resolve) => { drainTimer = setTimeout(resolve, 5000); })]);
  clearTimeout(drainTimer);
  for (const session of sessions) session.destroy();
  const sorted = Float64Array.from(latenciesMs.slice(0, completed)).sort();
  const round = (ms: number) => Math.round(ms * 100) / 100;
  return {
    requestsPerSecond: completed / elapsedSeconds,
    p50Ms: round(percentile(sorted, 0.5)),
    p99Ms: round(percentile(sorted, 0.99)),
    errors,
    non2xx: failed,
  };
}
