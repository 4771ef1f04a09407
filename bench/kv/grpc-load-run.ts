/**
 * The raw HTTP/2 load generator (grpc-load.ts) on its own, against any member's client port:
 * unary Puts of 256 B values to one key, closed loop. For server-side CPU measurements of another
 * process (cpu-per-put.sh LOADGEN=grpc-go-like); prints one line of results.
 *
 *   node dist/bench/kv/grpc-load-run.js --port P [--connections C (500)] [--streams M (1)]
 *     [--calls N (40000)] [--duration S (300)] [--bdp-pings]
 */
import { encode, messageType } from '../../src/proto/codec.js';
import { runGrpcLoad } from './grpc-load.js';

async function main(): Promise<void> {
  const arg = (name: string, fallback: number): number => {
    const at = process.argv.indexOf(name);
    return at === -1 ? fallback : Number(process.argv[at + 1]);
  };
  const put = encode(messageType('etcdserverpb.PutRequest'), { key: Buffer.from('bench/one'), value: Buffer.from('v'.repeat(256)) });
  const calls = arg('--calls', 40_000);
  const m = await runGrpcLoad({
    port: arg('--port', 2379),
    path: '/etcdserverpb.KV/Put',
    nextRequest: () => put,
    connections: arg('--connections', 500),
    streamsPerConnection: arg('--streams', 1),
    durationSeconds: arg('--duration', 300),
    bdpPings: process.argv.includes('--bdp-pings'),
    callsMax: calls,
  });
  console.log(`calls/s=${Math.round(m.requestsPerSecond)} p50_ms=${m.p50Ms} p99_ms=${m.p99Ms} errors=${m.errors} failed=${m.non2xx}`);
}

void main();
