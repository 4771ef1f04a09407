/**
 * gRPC load scenarios, keyraft side by side with etcd 3.4: what etcdctl, the etcd3 npm client,
 * python-etcd3 and Kubernetes send (the gateway benchmark covers curl-style JSON clients).
 *
 *   npm run bench:grpc                     keyraft alone
 *   npm run bench:grpc -- --vs-etcd        keyraft and etcd (Debian etcd-server) in the same run,
 *                                          alternating which goes first each round; ratios
 *   options: --duration S (10) --connections N (10) --streams N (10 per connection)
 *            --rounds R (3) --scenarios a,b
 *
 * 10 connections x 10 streams keeps 100 calls in flight, as the gateway benchmark's 100
 * connections do. The load generator (grpc-load.ts, raw HTTP/2 frames: a few µs of CPU per call)
 * runs in this process, sharing the 2 cores with the server, as etcd's published figures here
 * did. Medians of rounds.
 */
import { b64, killAll, postJson, startEtcd, startKeyraft } from '../../test/integration/harness.js';
import { encode, messageType } from '../../src/proto/codec.js';
import { runGrpcLoad } from './grpc-load.js';
import { checkEtcdAvailable, formatTable, parseCommonArgs, runScenarios, type CommonOptions, type Scenario, type ScenarioResult } from './side-by-side.js';

export interface GrpcBenchOptions extends CommonOptions {
  streamsPerConnection: number;
  log?: (line: string) => void;
}

interface GrpcScenario {
  name: string;
  setup?: (port: number) => Promise<void>;
  path: string;
  /** Builds the request body factory for one round. */
  requests: () => () => Uint8Array;
}

const putType = messageType('etcdserverpb.PutRequest');
const rangeType = messageType('etcdserverpb.RangeRequest');
const txnType = messageType('etcdserverpb.TxnRequest');
const value256 = Buffer.from('v'.repeat(256));
let uniqueCounter = 0;

function constant(bytes: Uint8Array): () => () => Uint8Array {
  return () => () => bytes;
}

export const grpcScenarios: GrpcScenario[] = [
  {
    name: 'put-unique-256B',
    path: '/etcdserverpb.KV/Put',
    requests: () => () => encode(putType, { key: Buffer.from(`bench/unique/${uniqueCounter++}`), value: value256 }),
  },
  {
    name: 'put-one-key',
    path: '/etcdserverpb.KV/Put',
    requests: constant(encode(putType, { key: Buffer.from('bench/one'), value: value256 })),
  },
  {
    name: 'range-one-key',
    setup: async (port) => { await postJson(port, '/v3/kv/put', { key: b64('bench/read'), value: b64('v'.repeat(256)) }); },
    path: '/etcdserverpb.KV/Range',
    requests: constant(encode(rangeType, { key: Buffer.from('bench/read') })),
  },
  {
    name: 'txn-cas',
    setup: async (port) => { await postJson(port, '/v3/kv/put', { key: b64('bench/cas'), value: b64('0') }); },
    path: '/etcdserverpb.KV/Txn',
    // Compare-and-swap on a version that is always > 0: succeeds every time, one write per txn.
    requests: constant(encode(txnType, {
      compare: [{ key: Buffer.from('bench/cas'), target: 0 /* VERSION */, result: 1 /* GREATER */, version: 0 }],
      success: [{ request_put: { key: Buffer.from('bench/cas'), value: value256 } }],
      failure: [{ request_range: { key: Buffer.from('bench/cas') } }],
    })),
  },
];

export async function runGrpcBench(options: GrpcBenchOptions): Promise<ScenarioResult[]> {
  const log = options.log ?? ((line: string) => process.stdout.write(line + '\n'));
  const chosen: Scenario[] = grpcScenarios
    .filter((s) => !options.scenarioNames || options.scenarioNames.includes(s.name))
    .map((s) => ({
      name: s.name,
      setup: s.setup,
      measure: (port) => runGrpcLoad({
        port,
        path: s.path,
        nextRequest: s.requests(),
        connections: options.connections,
        streamsPerConnection: options.streamsPerConnection,
        durationSeconds: options.durationSeconds,
      }),
    }));
  checkEtcdAvailable(options);
  try {
    const keyraft = await startKeyraft();
    const etcd = options.vsEtcd ? await startEtcd() : undefined;
    return await runScenarios(chosen, { keyraft, etcd }, options.rounds, log);
  } finally {
    await killAll();
  }
}

function parseCli(argv: string[]): GrpcBenchOptions {
  const options: GrpcBenchOptions = { vsEtcd: false, durationSeconds: 10, connections: 10, streamsPerConnection: 10, rounds: 3 };
  return parseCommonArgs(argv, options, (arg, value) => {
    if (arg !== '--streams') return false;
    options.streamsPerConnection = Number(value());
    return true;
  });
}

if (require.main === module) {
  const options = parseCli(process.argv.slice(2));
  runGrpcBench(options).then((results) => {
    console.log(`\ngRPC, ${options.connections} connections x ${options.streamsPerConnection} streams, ${options.durationSeconds} s x ${options.rounds} rounds (medians), ${new Date().toISOString()}`);
    console.log(formatTable(results));
  }, (err: Error) => {
    console.error(err);
    process.exit(1);
  });
}
