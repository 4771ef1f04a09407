/**
 * The keyraftctl commands: their specs (name, usage, flags) and what each does, following
 * etcdctl 3.4's command functions step for step, because the order of checks decides which
 * error a bad command line gets (argument checks, then the RPC, then output-format checks).
 */
import type {
  AlarmMember, CompactionRequest, DeleteRangeResponse, HashKVResponse, MemberListResponse, MoveLeaderResponse,
  PutResponse, RangeResponse, StatusResponse, TxnResponse,
} from '../proto/etcd-types.js';
import type { FlagSpec } from './ctl-args.js';
import type { Command, CommandContext } from './ctl-context.js';
import { EtcdClient } from './ctl-client.js';
import { CtlError, ExitCode } from './ctl-exit.js';
import { goDuration, goParseInt, GoSyntaxError } from './ctl-go-text.js';
import { buildDeleteRequest, buildPutRequest, buildRangeRequest, DEL_FLAGS, GET_FLAGS, PUT_FLAGS } from './ctl-kv-ops.js';
import type { EndpointHashKVResult, EndpointHealthResult, EndpointStatusResult } from './ctl-printer.js';
import { ELECT_FLAGS, runElect } from './ctl-elect.js';
import { LOCK_FLAGS, runLock } from './ctl-lock.js';
import { runLeaseGrant, runLeaseKeepAlive, runLeaseList, runLeaseRevoke, runLeaseTimeToLive } from './ctl-lease.js';
import { runSnapshotRestore, runSnapshotSave, runSnapshotStatus, SNAPSHOT_RESTORE_FLAGS } from './ctl-snapshot.js';
import { readTxnRequest } from './ctl-txn.js';
import { runWatch, WATCH_FLAGS } from './ctl-watch.js';

export const GLOBAL_FLAGS: FlagSpec[] = [
  { name: 'endpoints', kind: 'stringSlice', defaultText: '127.0.0.1:2379', usage: 'gRPC endpoints' },
  { name: 'write-out', short: 'w', kind: 'string', defaultText: 'simple', usage: 'set the output format (fields, json, protobuf, simple, table)' },
  { name: 'dial-timeout', kind: 'duration', defaultText: '2s', usage: 'dial timeout for client connections (accepted as etcdctl 3.4 does; dialing never blocks a command)' },
  { name: 'command-timeout', kind: 'duration', defaultText: '5s', usage: 'timeout for short running command (excluding dial timeout)' },
  { name: 'hex', kind: 'bool', defaultText: 'false', usage: 'print byte strings as hex encoded strings' },
];

const ENDPOINT_FLAGS: FlagSpec[] = [
  { name: 'cluster', kind: 'bool', defaultText: 'false', usage: 'use all endpoints from the cluster member list' },
];


async function runGet(ctx: CommandContext): Promise<ExitCode> {
  const req = buildRangeRequest(ctx.args, ctx.flags);
  const resp = await ctx.client().call<object, RangeResponse>('KV', 'Range', req, { deadlineMs: ctx.deadline() });
  if (ctx.flags.bool('count-only') && ctx.printer.format !== 'fields') {
    throw new CtlError(ExitCode.BadArgs, '--count-only is only for `--write-out=fields`');
  }
  const valueOnly = ctx.flags.bool('print-value-only');
  if (valueOnly && ctx.printer.format !== 'simple') {
    throw new CtlError(ExitCode.BadArgs, 'print-value-only is only for `--write-out=simple`');
  }
  ctx.printer.get(resp, valueOnly);
  return ExitCode.Success;
}

async function runPut(ctx: CommandContext): Promise<ExitCode> {
  const req = await buildPutRequest(ctx.args, ctx.flags, () => ctx.stdin.readAll());
  const resp = await ctx.client().call<object, PutResponse>('KV', 'Put', req, { deadlineMs: ctx.deadline() });
  ctx.printer.put(resp);
  return ExitCode.Success;
}

async function runDel(ctx: CommandContext): Promise<ExitCode> {
  const req = buildDeleteRequest(ctx.args, ctx.flags);
  const resp = await ctx.client().call<object, DeleteRangeResponse>('KV', 'DeleteRange', req, { deadlineMs: ctx.deadline() });
  ctx.printer.del(resp);
  return ExitCode.Success;
}

async function runTxn(ctx: CommandContext): Promise<ExitCode> {
  if (ctx.args.length !== 0) throw new CtlError(ExitCode.BadArgs, 'txn command does not accept argument');
  const interactive = ctx.flags.bool('interactive');
  const req = await readTxnRequest(ctx.stdin, interactive ? (title) => ctx.out.stdout(`${title}\n`) : undefined);
  const resp = await ctx.client().call<object, TxnResponse>('KV', 'Txn', req, { deadlineMs: ctx.deadline() });
  ctx.printer.txn(resp);
  return ExitCode.Success;
}

async function runCompaction(ctx: CommandContext): Promise<ExitCode> {
  if (ctx.args.length !== 1) throw new CtlError(ExitCode.BadArgs, 'compaction command needs 1 argument');
  let rev: bigint;
  try {
    rev = goParseInt(ctx.args[0]!, 10);
  } catch (err) {
    if (err instanceof GoSyntaxError) throw new CtlError(ExitCode.Error, err.message);
    throw err;
  }
  const req: CompactionRequest = { revision: Number(rev) };
  if (ctx.flags.bool('physical')) req.physical = true;
  await ctx.client().call<object, object>('KV', 'Compact', req, { deadlineMs: ctx.deadline() });
  ctx.out.stdout(`compacted revision ${rev}\n`);
  return ExitCode.Success;
}

/** --endpoints, or with --cluster every client URL in the member list (etcdctl's endpointsFromCluster). */
async function endpointsFromCluster(ctx: CommandContext): Promise<string[]> {
  const endpoints = ctx.flags.stringSlice('endpoints');
  if (!ctx.flags.bool('cluster')) return endpoints;
  let resp: MemberListResponse;
  try {
    resp = await ctx.client().call<object, MemberListResponse>('Cluster', 'MemberList', {}, { deadlineMs: ctx.deadline() });
  } catch (err) {
    if (err instanceof CtlError) throw new CtlError(ExitCode.Error, `failed to fetch endpoints from etcd cluster member list: ${err.message}`);
    throw err;
  }
  return (resp.members ?? []).flatMap((m) => m.clientURLs ?? []);
}

async function runEndpointStatus(ctx: CommandContext): Promise<ExitCode> {
  const results: EndpointStatusResult[] = [];
  let failed = false;
  for (const endpoint of await endpointsFromCluster(ctx)) {
    try {
      const status = await ctx.clientFor(endpoint).call<object, StatusResponse>('Maintenance', 'Status', {}, { deadlineMs: ctx.deadline() });
      results.push({ endpoint, status });
    } catch (err) {
      if (!(err instanceof CtlError)) throw err;
      failed = true;
      ctx.out.stderr(`Failed to get the status of endpoint ${endpoint} (${err.message})\n`);
    }
  }
  ctx.printer.endpointStatus(results);
  return failed ? ExitCode.Error : ExitCode.Success;
}

interface AlarmResponse {
  header?: StatusResponse['header'];
  alarms?: { memberID?: bigint; alarm?: number }[];
}

/** etcdctl 3.4's `endpoint hashkv`: HashKV of each endpoint at --rev; failures on stderr, exit 1 after the rest. */
async function runEndpointHashKV(ctx: CommandContext): Promise<ExitCode> {
  const results: EndpointHashKVResult[] = [];
  let failure: CtlError | undefined;
  const revision = Number(ctx.flags.int('rev'));
  for (const endpoint of await endpointsFromCluster(ctx)) {
    try {
      const hashKV = await ctx.clientFor(endpoint).call<object, HashKVResponse>('Maintenance', 'HashKV', { revision }, { deadlineMs: ctx.deadline() });
      results.push({ endpoint, hashKV });
    } catch (err) {
      if (!(err instanceof CtlError)) throw err;
      failure = err;
      ctx.out.stderr(`Failed to get the hash of endpoint ${endpoint} (${err.message})\n`);
    }
  }
  ctx.printer.endpointHashKV(results);
  // etcdctl 3.4 then exits with the last error ("Error: ..."), after printing what it got.
  if (failure !== undefined) throw new CtlError(ExitCode.Error, failure.message);
  return ExitCode.Success;
}

async function runAlarmList(ctx: CommandContext): Promise<ExitCode> {
  if (ctx.args.length !== 0) throw new CtlError(ExitCode.BadArgs, 'alarm list command accepts no arguments');
  const resp = await ctx.client().call<object, AlarmResponse>('Maintenance', 'Alarm', { action: 0 }, { deadlineMs: ctx.deadline() });
  ctx.printer.alarm({ header: resp.header, alarms: (resp.alarms ?? []) as AlarmMember[] });
  return ExitCode.Success;
}

/** clientv3's AlarmDisarm of the empty member: list, then deactivate each alarm listed. */
async function runAlarmDisarm(ctx: CommandContext): Promise<ExitCode> {
  if (ctx.args.length !== 0) throw new CtlError(ExitCode.BadArgs, 'alarm disarm command accepts no arguments');
  const deadlineMs = ctx.deadline();
  const client = ctx.client();
  const listed = await client.call<object, AlarmResponse>('Maintenance', 'Alarm', { action: 0 }, { deadlineMs });
  const disarmed: AlarmMember[] = [];
  for (const a of listed.alarms ?? []) {
    const resp = await client.call<object, AlarmResponse>('Maintenance', 'Alarm', { action: 2, memberID: a.memberID ?? 0n, alarm: a.alarm ?? 0 }, { deadlineMs });
    disarmed.push(...((resp.alarms ?? []) as AlarmMember[]));
  }
  ctx.printer.alarm({ alarms: disarmed });
  return ExitCode.Success;
}

/** etcdctl 3.4's online defrag, one endpoint after another. */
async function runDefrag(ctx: CommandContext): Promise<ExitCode> {
  if (ctx.flags.string('data-dir')) throw new CtlError(ExitCode.BadFeature, 'offline defrag (--data-dir) is not supported: keyraft defragments online without blocking');
  let failures = 0;
  for (const endpoint of await endpointsFromCluster(ctx)) {
    try {
      await ctx.clientFor(endpoint).call<object, object>('Maintenance', 'Defragment', {}, { deadlineMs: ctx.deadline() });
      ctx.out.stdout(`Finished defragmenting etcd member[${endpoint}]\n`);
    } catch (err) {
      if (!(err instanceof CtlError)) throw err;
      failures++;
      ctx.out.stderr(`Failed to defragment etcd member[${endpoint}] (${err.message})\n`);
    }
  }
  return failures !== 0 ? ExitCode.Error : ExitCode.Success;
}

/** etcdctl 3.4's move-leader: find the leader among --endpoints (Status), ask it to transfer. */
async function runMoveLeader(ctx: CommandContext): Promise<ExitCode> {
  if (ctx.args.length !== 1) throw new CtlError(ExitCode.BadArgs, 'move-leader command needs 1 argument');
  const text = ctx.args[0]!;
  if (!/^[0-9a-fA-F]+$/.test(text) || BigInt(`0x${text}`) > 0xffffffffffffffffn) {
    throw new CtlError(ExitCode.BadArgs, `strconv.ParseUint: parsing ${JSON.stringify(text)}: ${/^[0-9a-fA-F]+$/.test(text) ? 'value out of range' : 'invalid syntax'}`);
  }
  const target = BigInt(`0x${text}`);
  const endpoints = ctx.flags.stringSlice('endpoints');
  const deadlineMs = ctx.deadline();
  let leaderEndpoint: string | undefined;
  let leaderId = 0n;
  for (const endpoint of endpoints) {
    const status = await ctx.clientFor(endpoint).call<object, StatusResponse>('Maintenance', 'Status', {}, { deadlineMs });
    if ((status.header?.member_id ?? 0n) === status.leader) {
      leaderEndpoint = endpoint;
      leaderId = status.leader;
      break;
    }
  }
  if (leaderEndpoint === undefined) throw new CtlError(ExitCode.BadArgs, `no leader endpoint given at [${endpoints.join(' ')}]`);
  const resp = await ctx.clientFor(leaderEndpoint).call<object, MoveLeaderResponse>('Maintenance', 'MoveLeader', { targetID: target }, { deadlineMs });
  ctx.printer.moveLeader(leaderId, target, resp);
  return ExitCode.Success;
}

/**
 * etcdctl 3.4's health check of one endpoint: a linearizable get of "health" must succeed
 * ("permission denied" also proves the request went through consensus), then no alarm may be
 * active. `took` covers the get only.
 */
async function checkHealth(ctx: CommandContext, endpoint: string): Promise<EndpointHealthResult> {
  const client = ctx.clientFor(endpoint);
  const deadlineMs = ctx.deadline();
  const started = process.hrtime.bigint();
  let error = '';
  try {
    await client.call<object, RangeResponse>('KV', 'Range', { key: Buffer.from('health') }, { deadlineMs });
  } catch (err) {
    if (!(err instanceof CtlError)) throw err;
    if (err.message !== 'etcdserver: permission denied') error = err.message;
  }
  const took = goDuration(process.hrtime.bigint() - started);
  if (error === '') {
    try {
      const alarms = await client.call<object, AlarmResponse>('Maintenance', 'Alarm', { action: 0 }, { deadlineMs });
      if ((alarms.alarms ?? []).length > 0) {
        error = 'Active Alarm(s): ';
        for (const a of alarms.alarms ?? []) error += a.alarm === 1 ? 'NOSPACE ' : a.alarm === 2 ? 'CORRUPT ' : 'UNKNOWN ';
      }
    } catch (err) {
      if (!(err instanceof CtlError)) throw err;
      error = 'Unable to fetch the alarm list';
    }
  }
  return { endpoint, health: error === '', took, error };
}

async function runEndpointHealth(ctx: CommandContext): Promise<ExitCode> {
  const endpoints = await endpointsFromCluster(ctx);
  // All endpoints at once; results in the order they finish, as etcdctl collects them.
  const results: EndpointHealthResult[] = [];
  await Promise.all(endpoints.map(async (ep) => { results.push(await checkHealth(ctx, ep)); }));
  ctx.printer.endpointHealth(results);
  if (results.some((h) => h.error !== '')) throw new CtlError(ExitCode.Error, 'unhealthy cluster');
  return ExitCode.Success;
}

async function runMemberList(ctx: CommandContext): Promise<ExitCode> {
  const resp = await ctx.client().call<object, MemberListResponse>('Cluster', 'MemberList', {}, { deadlineMs: ctx.deadline() });
  ctx.printer.memberList(resp);
  return ExitCode.Success;
}

async function runVersion(ctx: CommandContext): Promise<ExitCode> {
  ctx.out.stdout(`keyraftctl version: ${ctx.version}\nAPI version: 3.4\n`);
  return ExitCode.Success;
}

export const COMMANDS: Command[] = [
  { spec: { path: ['get'], use: 'get [options] <key> [range_end]', summary: 'Gets the key or a range of keys', flags: GET_FLAGS }, usesPrinter: true, run: runGet },
  { spec: { path: ['put'], use: 'put [options] <key> <value> (<value> can also be given from stdin)', summary: 'Puts the given key into the store', flags: PUT_FLAGS }, usesPrinter: true, run: runPut },
  { spec: { path: ['del'], use: 'del [options] <key> [range_end]', summary: 'Removes the specified key or range of keys [key, range_end)', flags: DEL_FLAGS }, usesPrinter: true, run: runDel },
  {
    spec: { path: ['txn'], use: 'txn [options]', summary: 'Txn processes all the requests in one transaction', flags: [{ name: 'interactive', short: 'i', kind: 'bool', defaultText: 'false', usage: 'Input transaction in interactive mode' }] },
    usesPrinter: true, run: runTxn,
  },
  {
    spec: { path: ['compaction'], use: 'compaction [options] <revision>', summary: 'Compacts the event history in etcd', flags: [{ name: 'physical', kind: 'bool', defaultText: 'false', usage: "'true' to wait for compaction to physically remove all old revisions" }] },
    usesPrinter: false, run: runCompaction,
  },
  { spec: { path: ['endpoint', 'status'], use: 'endpoint status [flags]', summary: 'Prints out the status of endpoints specified in `--endpoints` flag', flags: ENDPOINT_FLAGS }, usesPrinter: true, run: runEndpointStatus },
  { spec: { path: ['endpoint', 'health'], use: 'endpoint health [flags]', summary: 'Checks the healthiness of endpoints specified in `--endpoints` flag', flags: ENDPOINT_FLAGS }, usesPrinter: true, run: runEndpointHealth },
  {
    spec: { path: ['endpoint', 'hashkv'], use: 'endpoint hashkv [flags]', summary: 'Prints the KV history hash for each endpoint in --endpoints', flags: [...ENDPOINT_FLAGS, { name: 'rev', kind: 'int', defaultText: '0', usage: 'maximum revision to hash (default: all revisions)' }] },
    usesPrinter: true, run: runEndpointHashKV,
  },
  { spec: { path: ['alarm', 'list'], use: 'alarm list', summary: 'Lists all alarms', flags: [] }, usesPrinter: true, run: runAlarmList },
  { spec: { path: ['alarm', 'disarm'], use: 'alarm disarm', summary: 'Disarms all alarms', flags: [] }, usesPrinter: true, run: runAlarmDisarm },
  {
    spec: { path: ['defrag'], use: 'defrag', summary: 'Defragments the storage of the etcd members with given endpoints', flags: [...ENDPOINT_FLAGS, { name: 'data-dir', kind: 'string', defaultText: '', usage: 'Optional. If present, defragments a data directory not in use by etcd.' }] },
    usesPrinter: false, run: runDefrag,
  },
  { spec: { path: ['move-leader'], use: 'move-leader <transferee-member-id>', summary: 'Transfers leadership to another etcd cluster member.', flags: [] }, usesPrinter: true, run: runMoveLeader },
  { spec: { path: ['lease', 'grant'], use: 'lease grant <ttl>', summary: 'Creates leases', flags: [] }, usesPrinter: true, run: runLeaseGrant },
  { spec: { path: ['lease', 'revoke'], use: 'lease revoke <leaseID>', summary: 'Revokes leases', flags: [] }, usesPrinter: true, run: runLeaseRevoke },
  {
    spec: { path: ['lease', 'timetolive'], use: 'lease timetolive <leaseID> [options]', summary: 'Get lease information', flags: [{ name: 'keys', kind: 'bool', defaultText: 'false', usage: 'Get keys attached to this lease' }] },
    usesPrinter: true, run: runLeaseTimeToLive,
  },
  { spec: { path: ['lease', 'list'], use: 'lease list', summary: 'List all active leases', flags: [] }, usesPrinter: true, run: runLeaseList },
  {
    spec: { path: ['lease', 'keep-alive'], use: 'lease keep-alive [options] <leaseID>', summary: 'Keeps leases alive (renew)', flags: [{ name: 'once', kind: 'bool', defaultText: 'false', usage: 'Resets the keep-alive time to its original value and exits immediately' }] },
    usesPrinter: true, run: runLeaseKeepAlive,
  },
  { spec: { path: ['member', 'list'], use: 'member list', summary: 'Lists all members in the cluster', flags: [] }, usesPrinter: true, run: runMemberList },
  { spec: { path: ['snapshot', 'save'], use: 'snapshot save <filename>', summary: 'Stores an etcd node backend snapshot to a given file', flags: [] }, usesPrinter: false, run: runSnapshotSave },
  { spec: { path: ['snapshot', 'status'], use: 'snapshot status <filename>', summary: 'Gets backend snapshot status of a given file', flags: [] }, usesPrinter: true, run: runSnapshotStatus },
  { spec: { path: ['snapshot', 'restore'], use: 'snapshot restore <filename> [options]', summary: 'Restores an etcd member snapshot to an etcd directory', flags: SNAPSHOT_RESTORE_FLAGS }, usesPrinter: false, run: runSnapshotRestore },
  {
    spec: { path: ['watch'], use: 'watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]', summary: 'Watches events stream on keys or prefixes', flags: WATCH_FLAGS },
    usesPrinter: true, streamsOutput: true, run: runWatch,
  },
  { spec: { path: ['lock'], use: 'lock <lockname> [exec-command arg1 arg2 ...]', summary: 'Acquires a named lock', flags: LOCK_FLAGS }, usesPrinter: true, streamsOutput: true, run: runLock },
  { spec: { path: ['elect'], use: 'elect <election-name> [proposal]', summary: 'Observes and participates in leader election', flags: ELECT_FLAGS }, usesPrinter: true, streamsOutput: true, run: runElect },
  { spec: { path: ['version'], use: 'version', summary: 'Prints the version of keyraftctl', flags: [] }, usesPrinter: false, run: runVersion },
];
