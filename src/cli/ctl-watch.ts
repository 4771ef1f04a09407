/**
 * `keyraftctl watch`, as etcdctl 3.4's watch command (etcdctl/ctlv3/command/watch_command.go):
 *
 *   watch [--prefix] [--rev N] [--prev-kv] <key> [range_end] [-- <command> [args...]]
 *   watch -i     then, line by line on stdin: `watch [flags] <key> [range_end] [-- cmd...]` or `progress`
 *
 * Every watch of one invocation shares one gRPC Watch stream (clientv3 keys streams by context,
 * and etcdctl uses the same one for all), so a `progress` request is answered once on it and
 * the answer goes to every watcher, each printing "progress notify: <revision>".
 *
 * Output per response (printWatchCh): a canceled watch prints "watch was canceled (<reason>)"
 * on stderr; a progress notification prints "progress notify: <rev>"; then the printer's Watch:
 * simple = for each event its type, the prev_kv (if any) and the kv as key and value lines;
 * json = clientv3's WatchResponse struct through encoding/json. After printing, `-- command`
 * runs once per event with ETCD_WATCH_REVISION, ETCD_WATCH_EVENT_TYPE, ETCD_WATCH_KEY and
 * ETCD_WATCH_VALUE set (Go %q quoted). Created responses are not shown (clientv3 swallows them).
 * When the server ends the watch, etcdctl exits 5 with "watch is canceled by the server".
 */
import { spawn } from 'node:child_process';
import type * as grpc from '@grpc/grpc-js';
import { messageType } from '../proto/codec.js';
import type { KeyValue, WatchCreateRequest, WatchRequest } from '../proto/etcd-types.js';
import type { FlagSpec } from './ctl-args.js';
import type { CommandContext } from './ctl-context.js';
import { CtlError, ExitCode } from './ctl-exit.js';
import { goQuote } from './ctl-go-text.js';
import { marshalGoJson } from './ctl-json.js';
import { prefixEnd } from '../proto/key-range.js';

export const WATCH_FLAGS: FlagSpec[] = [
  { name: 'interactive', short: 'i', kind: 'bool', defaultText: 'false', usage: 'Interactive mode' },
  { name: 'prefix', kind: 'bool', defaultText: 'false', usage: 'Watch on a prefix if prefix is set' },
  { name: 'rev', kind: 'int', defaultText: '0', usage: 'Revision to start watching' },
  { name: 'prev-kv', kind: 'bool', defaultText: 'false', usage: 'get the previous key-value pair before the event happens' },
];

/** A WatchResponse as the codec decodes it (absent fields are the proto3 defaults). */
interface WatchResponseMessage {
  header?: { cluster_id?: bigint; member_id?: bigint; revision?: number; raft_term?: number };
  watch_id?: number;
  created?: boolean;
  canceled?: boolean;
  compact_revision?: number;
  cancel_reason?: string;
  fragment?: boolean;
  events?: Array<{ type?: number; kv?: KeyValue; prev_kv?: KeyValue }>;
}

interface WatchSpec {
  key: string;
  rangeEnd: string | undefined;
  prefix: boolean;
  rev: number;
  prevKv: boolean;
  execArgs: string[];
}

const headerType = messageType('etcdserverpb.ResponseHeader');
const eventType = messageType('mvccpb.Event');

/** etcdctl's errBadArgsNum and friends. */
const ERR_BAD_ARGS_NUM = 'bad number of arguments';
const ERR_SEPARATOR = 'bad number of arguments (found separator --, but no commands)';

export async function runWatch(ctx: CommandContext): Promise<ExitCode> {
  const session = new WatchSession(ctx);
  try {
    return await watchWith(ctx, session);
  } finally {
    session.close();
  }
}

async function watchWith(ctx: CommandContext, session: WatchSession): Promise<ExitCode> {
  if (ctx.flags.bool('interactive')) return session.interactive();
  const args = ctx.args;
  const sep = ctx.separatorAt;
  if (sep !== undefined && sep === args.length) throw new CtlError(ExitCode.BadArgs, ERR_SEPARATOR);
  const watchArgs = sep === undefined ? args : args.slice(0, sep);
  const execArgs = sep === undefined ? [] : args.slice(sep);
  if (watchArgs.length < 1) throw new CtlError(ExitCode.BadArgs, ERR_BAD_ARGS_NUM);
  const spec: WatchSpec = {
    key: watchArgs[0]!, rangeEnd: watchArgs.length === 2 ? watchArgs[1] : undefined,
    prefix: ctx.flags.bool('prefix'), rev: Number(ctx.flags.int('rev')), prevKv: ctx.flags.bool('prev-kv'), execArgs,
  };
  if (spec.rangeEnd !== undefined && spec.prefix) throw new CtlError(ExitCode.BadArgs, '`range_end` and `--prefix` are mutually exclusive');
  await session.watch(spec);
  await session.ended;
  throw new CtlError(ExitCode.Interrupted, 'watch is canceled by the server');
}

/** The invocation's one Watch stream and its watchers, in creation order. */
class WatchSession {
  private stream: grpc.ClientDuplexStream<WatchRequest, WatchResponseMessage> | undefined;
  /** Watches sent and not yet acknowledged by a created response (answered in order). */
  private readonly creating: WatchSpec[] = [];
  private readonly watchers = new Map<number, WatchSpec>();
  /** Printing and command runs happen one response at a time, in arrival order. */
  private queue: Promise<void> = Promise.resolve();
  private endStream!: () => void;
  readonly ended = new Promise<void>((resolve) => { this.endStream = resolve; });

  constructor(private readonly ctx: CommandContext) {}

  async watch(spec: WatchSpec): Promise<void> {
    const stream = await this.open();
    const create: WatchCreateRequest = { key: Buffer.from(spec.key), start_revision: spec.rev, prev_kv: spec.prevKv };
    if (spec.prefix) {
      if (spec.key === '') {
        create.key = Buffer.from([0]);
        create.range_end = Buffer.from([0]);
      } else create.range_end = prefixEnd(create.key!);
    } else if (spec.rangeEnd !== undefined) create.range_end = Buffer.from(spec.rangeEnd);
    this.creating.push(spec);
    stream.write({ create_request: create });
  }

  async interactive(): Promise<ExitCode> {
    for (;;) {
      const raw = await this.ctx.stdin.readLine();
      if (raw === undefined) throw new CtlError(ExitCode.InvalidInput, 'Error reading watch request line: EOF');
      const line = raw.replace(/\n$/, '');
      const args = line.split(/\s+/).filter((a) => a.length > 0);
      if (args.length < 1) {
        this.ctx.out.stderr(`Invalid command: ${line} (watch and progress supported)\n`);
        continue;
      }
      if (args[0] === 'progress') {
        (await this.open()).write({ progress_request: {} });
        continue;
      }
      if (args[0] !== 'watch') {
        this.ctx.out.stderr(`Invalid command ${line} (only support watch)\n`);
        continue;
      }
      if (args.length < 2) {
        this.ctx.out.stderr(`Invalid command ${line} (command type or key is not provided)\n`);
        continue;
      }
      const spec = parseInteractiveWatch(args.slice(1));
      if (typeof spec === 'string') {
        this.ctx.out.stderr(`Invalid command ${line} (${spec})\n`);
        continue;
      }
      await this.watch(spec);
    }
  }

  /** Cancels the stream (the command is over): an open call would keep the process alive. */
  close(): void {
    this.closing = true;
    this.stream?.cancel();
  }

  private closing = false;

  private async open(): Promise<grpc.ClientDuplexStream<WatchRequest, WatchResponseMessage>> {
    if (this.stream) return this.stream;
    const stream = await this.ctx.client().watchStream<WatchRequest, WatchResponseMessage>(this.ctx.deadline());
    this.stream = stream;
    stream.on('data', (resp: WatchResponseMessage) => {
      this.queue = this.queue.then(() => this.dispatch(resp));
    });
    const finish = (): void => { this.queue = this.queue.then(() => this.endStream()); };
    stream.on('error', (err: grpc.ServiceError) => {
      if (this.closing) return;
      this.ctx.out.stderr(`watch was canceled (${err.details || err.message})\n`);
      finish();
    });
    stream.on('end', finish);
    return stream;
  }

  private async dispatch(resp: WatchResponseMessage): Promise<void> {
    const id = resp.watch_id ?? 0;
    if (resp.created) {
      const spec = this.creating.shift();
      if (spec === undefined) return;
      if (resp.canceled || id === -1) {
        this.ctx.out.stderr(`watch was canceled (rpc error: code = FailedPrecondition desc = ${resp.cancel_reason ?? ''})\n`);
        if (!this.ctx.flags.bool('interactive')) this.endStream();
        return;
      }
      this.watchers.set(id, spec);
      return;
    }
    // A progress response for the whole stream goes to every watcher, as clientv3 broadcasts it.
    const targets = id === -1 ? [...this.watchers.values()] : [this.watchers.get(id)].filter((w): w is WatchSpec => w !== undefined);
    for (const spec of targets) await this.show(resp, spec);
    if (resp.canceled && id !== -1) {
      this.watchers.delete(id);
      if (this.watchers.size === 0 && !this.ctx.flags.bool('interactive')) this.endStream();
    }
  }

  private async show(resp: WatchResponseMessage, spec: WatchSpec): Promise<void> {
    const out = this.ctx.out;
    const events = resp.events ?? [];
    if (resp.canceled) {
      const reason = resp.compact_revision ? 'etcdserver: mvcc: required revision has been compacted'
        : resp.cancel_reason ? `rpc error: code = FailedPrecondition desc = ${resp.cancel_reason}` : 'etcdserver: mvcc: required revision is a future revision';
      out.stderr(`watch was canceled (${reason})\n`);
    }
    const revision = resp.header?.revision ?? 0;
    if (events.length === 0 && !resp.canceled && !resp.created && !resp.compact_revision && revision !== 0) {
      out.stdout(`progress notify: ${revision}\n`);
    }
    const printer = this.ctx.printer;
    if (printer.format === 'json') {
      const eventsJson = `[${events.map((e) => marshalGoJson(eventType, e)).join(',')}]`;
      out.stdout(`{"Header":${marshalGoJson(headerType, resp.header ?? {})},"Events":${eventsJson},"CompactRevision":${resp.compact_revision ?? 0},` +
        `"Canceled":${resp.canceled === true},"Created":${resp.created === true}}\n`);
    } else {
      for (const e of events) {
        out.stdout(`${(e.type ?? 0) === 1 ? 'DELETE' : 'PUT'}\n`);
        if (e.prev_kv) printer.keyValue(e.prev_kv);
        printer.keyValue(e.kv!);
      }
    }
    if (spec.execArgs.length === 0) return;
    for (const e of events) {
      const kv = e.kv!;
      const env = {
        ...process.env,
        ETCD_WATCH_REVISION: String(revision),
        ETCD_WATCH_EVENT_TYPE: goQuote((e.type ?? 0) === 1 ? 'DELETE' : 'PUT'),
        ETCD_WATCH_KEY: goQuote(kv.key ?? Buffer.alloc(0)),
        ETCD_WATCH_VALUE: goQuote(kv.value ?? Buffer.alloc(0)),
      };
      // What was printed goes out before the command writes to the same stdout.
      await out.flush?.();
      const code = await new Promise<number>((resolve) => {
        const child = spawn(spec.execArgs[0]!, spec.execArgs.slice(1), { env, stdio: ['ignore', 'inherit', 'inherit'] });
        child.on('error', () => resolve(-1));
        child.on('exit', (c) => resolve(c ?? -1));
      });
      if (code !== 0) {
        out.stderr(`command ${goQuoteList(spec.execArgs)} error (exit status ${code})\n`);
        throw new CtlError(ExitCode.Error, `command failed`);
      }
    }
  }
}

/** Go's %q of a []string: ["echo" "hi"]. */
function goQuoteList(args: readonly string[]): string {
  return `[${args.map((a) => goQuote(a)).join(' ')}]`;
}

/** An interactive `watch` line's flags and arguments (etcdctl parses them with the watch command's flag set). */
function parseInteractiveWatch(args: string[]): WatchSpec | string {
  const spec: WatchSpec = { key: '', rangeEnd: undefined, prefix: false, rev: 0, prevKv: false, execArgs: [] };
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      spec.execArgs = args.slice(i + 1);
      if (spec.execArgs.length === 0) return ERR_SEPARATOR;
      break;
    }
    if (a === '--prefix' || a === '--prefix=true') spec.prefix = true;
    else if (a === '--prev-kv' || a === '--prev-kv=true') spec.prevKv = true;
    else if (a === '--rev' || a.startsWith('--rev=')) {
      const text = a === '--rev' ? args[++i] : a.slice('--rev='.length);
      if (text === undefined || !/^-?\d+$/.test(text)) return `invalid argument ${goQuote(text ?? '')} for "--rev" flag`;
      spec.rev = Number(text);
    } else if (a.startsWith('-')) return `unknown flag: ${a}`;
    else positional.push(a);
  }
  if (positional.length < 1) return ERR_BAD_ARGS_NUM;
  spec.key = positional[0]!;
  if (positional.length === 2) {
    if (spec.prefix) return '`range_end` and `--prefix` are mutually exclusive';
    spec.rangeEnd = positional[1];
  }
  return spec;
}
