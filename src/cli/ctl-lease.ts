/**
 * keyraftctl's lease commands, as etcdctl 3.4's lease_command.go: grant, revoke, timetolive
 * [--keys], list, keep-alive [--once]. Argument errors, then the RPC, then printing, in
 * etcdctl's order and with its messages and exit codes.
 */
import type * as grpc from '@grpc/grpc-js';
import type {
  LeaseGrantResponse, LeaseKeepAliveResponse, LeaseLeasesResponse, LeaseRevokeResponse, LeaseTimeToLiveResponse,
} from '../proto/etcd-types.js';
import type { CommandContext } from './ctl-context.js';
import { CtlError, ExitCode } from './ctl-exit.js';
import { goParseInt, GoSyntaxError } from './ctl-go-text.js';
import { leaseHex } from './ctl-printer.js';

/** etcdctl's leaseFromArgs: a hex lease id, or exit 128 with its message. */
function leaseFromArgs(arg: string): bigint {
  try {
    return goParseInt(arg, 16);
  } catch (err) {
    if (err instanceof GoSyntaxError) throw new CtlError(ExitCode.BadArgs, `bad lease ID arg (${err.message}), expecting ID in Hex`);
    throw err;
  }
}

/** Re-labels an RPC failure as etcdctl does ("failed to grant lease (...)"). */
async function labelled<T>(what: string, call: Promise<T>): Promise<T> {
  try {
    return await call;
  } catch (err) {
    if (err instanceof CtlError && err.exitCode === ExitCode.Error) throw new CtlError(ExitCode.Error, `${what} (${err.message})`);
    throw err;
  }
}

export async function runLeaseGrant(ctx: CommandContext): Promise<ExitCode> {
  if (ctx.args.length !== 1) throw new CtlError(ExitCode.BadArgs, 'lease grant command needs TTL argument');
  let ttl: bigint;
  try {
    ttl = goParseInt(ctx.args[0]!, 10);
  } catch (err) {
    if (err instanceof GoSyntaxError) throw new CtlError(ExitCode.BadArgs, `bad TTL (${err.message})`);
    throw err;
  }
  const resp = await labelled('failed to grant lease', ctx.client().call<object, LeaseGrantResponse>(
    'Lease', 'LeaseGrant', { TTL: Number(ttl) }, { deadlineMs: ctx.deadline() }));
  ctx.printer.leaseGrant(resp);
  return ExitCode.Success;
}

export async function runLeaseRevoke(ctx: CommandContext): Promise<ExitCode> {
  if (ctx.args.length !== 1) throw new CtlError(ExitCode.BadArgs, 'lease revoke command needs 1 argument');
  const id = leaseFromArgs(ctx.args[0]!);
  const resp = await labelled('failed to revoke lease', ctx.client().call<object, LeaseRevokeResponse>(
    'Lease', 'LeaseRevoke', { ID: id }, { deadlineMs: ctx.deadline() }));
  ctx.printer.leaseRevoke(id, resp);
  return ExitCode.Success;
}

export async function runLeaseTimeToLive(ctx: CommandContext): Promise<ExitCode> {
  if (ctx.args.length !== 1) throw new CtlError(ExitCode.BadArgs, 'lease timetolive command needs lease ID as argument');
  const id = leaseFromArgs(ctx.args[0]!);
  const keys = ctx.flags.bool('keys');
  const resp = await ctx.client().call<object, LeaseTimeToLiveResponse>('Lease', 'LeaseTimeToLive', { ID: id, keys }, { deadlineMs: ctx.deadline() });
  ctx.printer.leaseTimeToLive(resp, keys);
  return ExitCode.Success;
}

export async function runLeaseList(ctx: CommandContext): Promise<ExitCode> {
  const resp = await labelled('failed to list leases', ctx.client().call<object, LeaseLeasesResponse>(
    'Lease', 'LeaseLeases', {}, { deadlineMs: ctx.deadline() }));
  ctx.printer.leaseList(resp);
  return ExitCode.Success;
}

/**
 * keep-alive: renews the lease over one LeaseKeepAlive stream, printing each response, every
 * TTL/3 as clientv3 does, until the lease is gone ("expired or revoked.", exit 0) or the process
 * is stopped. --once: one renewal; a lease that is gone is etcd's "requested lease not found"
 * (exit 2, as clientv3's KeepAliveOnce reports it).
 */
export async function runLeaseKeepAlive(ctx: CommandContext): Promise<ExitCode> {
  if (ctx.args.length !== 1) throw new CtlError(ExitCode.BadArgs, 'lease keep-alive command needs lease ID as argument');
  const id = leaseFromArgs(ctx.args[0]!);
  const once = ctx.flags.bool('once');
  const stream = await ctx.client().stream<object, LeaseKeepAliveResponse>('Lease', 'LeaseKeepAlive', { deadlineMs: ctx.deadline() });
  try {
    for (;;) {
      const resp = await renewOnce(stream, id);
      if ((resp.TTL ?? 0) <= 0) {
        if (once) throw new CtlError(ExitCode.BadConnection, 'etcdserver: requested lease not found');
        ctx.out.stdout(`lease ${leaseHex(id)} expired or revoked.\n`);
        return ExitCode.Success;
      }
      ctx.printer.leaseKeepAlive(resp);
      if (once) return ExitCode.Success;
      await new Promise((r) => setTimeout(r, Math.max(500, ((resp.TTL ?? 3) * 1000) / 3)));
    }
  } finally {
    // Cancelling our own stream reports CANCELLED as an 'error': expected, not a failure.
    stream.on('error', () => undefined);
    stream.end();
    stream.cancel();
  }
}

function renewOnce(stream: grpc.ClientDuplexStream<object, LeaseKeepAliveResponse>, id: bigint): Promise<LeaseKeepAliveResponse> {
  return new Promise((resolve, reject) => {
    const onData = (resp: LeaseKeepAliveResponse) => { cleanup(); resolve(resp); };
    const onError = (err: grpc.ServiceError) => { cleanup(); reject(new CtlError(ExitCode.BadConnection, err.details || err.message)); };
    const onEnd = () => { cleanup(); reject(new CtlError(ExitCode.BadConnection, 'keep-alive stream ended')); };
    const cleanup = () => {
      stream.off('data', onData);
      stream.off('error', onError);
      stream.off('end', onEnd);
    };
    stream.on('data', onData);
    stream.on('error', onError);
    stream.on('end', onEnd);
    stream.write({ ID: id });
  });
}
