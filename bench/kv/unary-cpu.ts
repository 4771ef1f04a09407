/**
 * CPU per unary gRPC call through the client port, in one process: our HTTP/2 and gRPC layers over
 * an in-memory member (test/api/memory-member.ts: no Raft, no disk; one key), driven by the raw-frame load
 * generator (grpc-load.ts). CPU is process.cpuUsage() over the run divided by the calls made, so
 * it includes the load generator's few µs per call: compare runs of this script (one commit against
 * another, alternating), not with the server-only figures elsewhere.
 *
 *   node dist/bench/kv/unary-cpu.js [--duration S (5)] [--rounds R (3)] [--only NAME]
 *
 * --only put-one-key-256B (or range-one-key): that scenario alone, e.g. to profile one of them.
 */
import { Registry } from 'prom-client';
import { startClientServer } from '../../src/api/client-server.js';
import { silentLogger } from '../../src/platform/logger.js';
import { encode, messageType } from '../../src/proto/codec.js';
import { MemoryMember } from '../../test/api/memory-member.js';
import { runGrpcLoad } from './grpc-load.js';

const putType = messageType('etcdserverpb.PutRequest');
const rangeType = messageType('etcdserverpb.RangeRequest');

async function main(): Promise<void> {
  const arg = (name: string, fallback: number): number => {
    const at = process.argv.indexOf(name);
    return at === -1 ? fallback : Number(process.argv[at + 1]);
  };
  const durationSeconds = arg('--duration', 5);
  const rounds = arg('--rounds', 3);
  const member = new MemoryMember({});
  const server = await startClientServer({ member, host: '127.0.0.1', port: 0, logger: silentLogger, metricsRegistry: new Registry() });
  // The memory member scans every key on a range and records every request: one key, and the record cleared as we go.
  let n = 0;
  const keep = <T>(request: T): T => {
    if (++n % 10_000 === 0) member.received.length = 0;
    return request;
  };
  const put = encode(putType, { key: Buffer.from('bench/one'), value: Buffer.from('v'.repeat(256)) });
  const range = encode(rangeType, { key: Buffer.from('bench/one') });
  const scenarios = [
    { name: 'put-one-key-256B', path: '/etcdserverpb.KV/Put', nextRequest: () => keep(put) },
    { name: 'range-one-key', path: '/etcdserverpb.KV/Range', nextRequest: () => keep(range) },
  ];
  const onlyAt = process.argv.indexOf('--only');
  const only = onlyAt === -1 ? undefined : process.argv[onlyAt + 1];
  try {
    for (const s of scenarios) {
      if (only !== undefined && s.name !== only) continue;
      const results: Array<{ rps: number; cpuUs: number }> = [];
      for (let r = 0; r < rounds; r++) {
        const before = process.cpuUsage();
        const m = await runGrpcLoad({ port: server.port, path: s.path, nextRequest: s.nextRequest, connections: 10, streamsPerConnection: 10, durationSeconds });
        const used = process.cpuUsage(before);
        const calls = m.requestsPerSecond * durationSeconds;
        results.push({ rps: m.requestsPerSecond, cpuUs: (used.user + used.system) / calls });
      }
      const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
      console.log(`${s.name}: ${Math.round(median(results.map((x) => x.rps)))} calls/s, ${median(results.map((x) => x.cpuUs)).toFixed(1)} µs CPU per call (median of ${rounds}; rounds ${results.map((x) => x.cpuUs.toFixed(1)).join(', ')})`);
    }
  } finally {
    await server.close();
  }
}

void main();
