/**
 * keyraftctl elect <election-name> [proposal] and elect -l, as etcdctl 3.4's, on the server's
 * Election service (v3electionpb; etcdctl runs clientv3's concurrency.Election on the client: the
 * same recipe, server/election-service.ts). Both open a session first (a lease of 60 s kept alive),
 * as etcdctl does even to observe.
 *
 *   - elect NAME PROPOSAL: campaigns with the session's lease; once elected prints the leader key
 *     as `get` does (key, then the proposal), and leads until SIGINT/SIGTERM (then resigns, exit 0)
 *     or until the session's lease is gone ("elect: session expired", exit 1). Interrupted while
 *     campaigning: "context canceled" (the server resigns the waiting campaign).
 *   - elect -l NAME: prints the leader and every value it proclaims, then each next leader, until
 *     SIGINT/SIGTERM (exit 0); an observation the server ends is "elect: observer lost" (exit 1).
 */
import type { CampaignResponse, LeaderResponse, RangeResponse } from '../proto/etcd-types.js';
import type { CommandContext } from './ctl-context.js';
import { CtlError, ExitCode } from './ctl-exit.js';
import type { FlagSpec } from './ctl-args.js';
import { interruptSignal, Session } from './ctl-session.js';

/** clientv3 concurrency's default session TTL, which etcdctl elect uses. */
const SESSION_TTL_SECONDS = 60;

export const ELECT_FLAGS: FlagSpec[] = [
  { name: 'listen', short: 'l', kind: 'bool', defaultText: 'false', usage: 'observation mode' },
];

export async function runElect(ctx: CommandContext): Promise<ExitCode> {
  if (ctx.args.length !== 1 && ctx.args.length !== 2) {
    throw new CtlError(ExitCode.BadArgs, 'elect takes one election name argument and an optional proposal argument');
  }
  const listen = ctx.flags.bool('listen');
  if (ctx.args.length === 1 && !listen) throw new CtlError(ExitCode.BadArgs, 'no proposal argument but -l not set');
  if (ctx.args.length === 2 && listen) throw new CtlError(ExitCode.BadArgs, 'proposal given but -l is set');
  const interrupt = interruptSignal();
  let session: Session | undefined;
  try {
    session = await Session.open(ctx, SESSION_TTL_SECONDS);
    const name = Buffer.from(ctx.args[0]!);
    if (listen) return await observe(ctx, name, interrupt.signal);
    return await campaign(ctx, session, name, Buffer.from(ctx.args[1]!), interrupt);
  } finally {
    session?.close();
    interrupt.release();
  }
}

async function observe(ctx: CommandContext, name: Buffer, signal: AbortSignal): Promise<ExitCode> {
  const responses = ctx.client().serverStream<object, LeaderResponse>('v3electionpb.Election', 'Observe', { name },
    { deadlineMs: ctx.deadline(), unbounded: true, signal });
  for await (const response of responses) {
    // etcdctl prints clientv3's GetResponse {header, kvs: [kv]} (no count) as `get` would.
    ctx.printer.get({ header: response.header, kvs: response.kv ? [response.kv] : [], more: false, count: 0 });
    await ctx.out.flush?.();
  }
  if (signal.aborted) return ExitCode.Success;
  throw new CtlError(ExitCode.Error, 'elect: observer lost');
}

async function campaign(
  ctx: CommandContext, session: Session, name: Buffer, proposal: Buffer, interrupt: { signal: AbortSignal; interrupted: Promise<void> },
): Promise<ExitCode> {
  const elected = await ctx.client().call<object, CampaignResponse>('v3electionpb.Election', 'Campaign', { name, lease: session.lease, value: proposal },
    { deadlineMs: ctx.deadline(), unbounded: true, signal: interrupt.signal });
  const leader = elected.leader ?? {};
  const got = await ctx.client().call<object, RangeResponse>('KV', 'Range', { key: leader.key ?? Buffer.alloc(0) }, { deadlineMs: ctx.deadline() });
  ctx.printer.get(got);
  await ctx.out.flush?.();
  const how = await Promise.race([interrupt.interrupted.then(() => 'interrupted' as const), session.done.then(() => 'expired' as const)]);
  if (how === 'expired') throw new CtlError(ExitCode.Error, 'elect: session expired');
  await ctx.client().call<object, object>('v3electionpb.Election', 'Resign', { leader }, { deadlineMs: ctx.deadline() });
  return ExitCode.Success;
}
