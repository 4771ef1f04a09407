/**
 * The get, put and del operations as etcdctl 3.4 builds them from a command line (its getGetOp,
 * getPutOp and getDelOp, plus clientv3's op options). The `get`, `put` and `del` commands and the
 * lines of a `txn` share these builders, as they do in etcdctl, so a txn line accepts exactly
 * the flags of the command of the same name.
 *
 * Range options, in clientv3's terms (key "a" unless stated):
 *   --prefix        range_end = prefix end of key: "a" -> "b", "a\xff" -> "b"; "" -> key "\0", end "\0"
 *   --from-key      range_end = "\0" (every key >= key); "" -> key "\0"
 *   RANGE_END arg   range_end as given
 * Sorting by key ascending is sent as "no sort order", because the server already returns keys
 * in ascending order (clientv3.WithSort does the same).
 */
import type { DeleteRangeRequest, PutRequest, RangeRequest, SortOrder, SortTarget } from '../proto/etcd-types.js';
import type { FlagSpec, ParsedFlags } from './ctl-args.js';
import { CtlError, ExitCode } from './ctl-exit.js';
import { goParseInt, goQuote, GoSyntaxError } from './ctl-go-text.js';
import { prefixEnd } from '../proto/key-range.js';

export const GET_FLAGS: FlagSpec[] = [
  { name: 'consistency', kind: 'string', defaultText: 'l', usage: 'Linearizable(l) or Serializable(s)' },
  { name: 'from-key', kind: 'bool', defaultText: 'false', usage: 'Get keys that are greater than or equal to the given key using byte compare' },
  { name: 'keys-only', kind: 'bool', defaultText: 'false', usage: 'Get only the keys' },
  { name: 'count-only', kind: 'bool', defaultText: 'false', usage: 'Get only the count (with --write-out=fields)' },
  { name: 'limit', kind: 'int', defaultText: '0', usage: 'Maximum number of results' },
  { name: 'order', kind: 'string', defaultText: '', usage: 'Order of results; ASCEND or DESCEND (ASCEND by default)' },
  { name: 'prefix', kind: 'bool', defaultText: 'false', usage: 'Get keys with matching prefix' },
  { name: 'print-value-only', kind: 'bool', defaultText: 'false', usage: 'Only write values when using the "simple" output format' },
  { name: 'rev', kind: 'int', defaultText: '0', usage: 'Specify the kv revision' },
  { name: 'sort-by', kind: 'string', defaultText: '', usage: 'Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION' },
];

export const PUT_FLAGS: FlagSpec[] = [
  { name: 'ignore-lease', kind: 'bool', defaultText: 'false', usage: 'updates the key using its current lease' },
  { name: 'ignore-value', kind: 'bool', defaultText: 'false', usage: 'updates the key using its current value' },
  { name: 'lease', kind: 'string', defaultText: '0', usage: 'lease ID (in hexadecimal) to attach to the key' },
  { name: 'prev-kv', kind: 'bool', defaultText: 'false', usage: 'return the previous key-value pair before modification' },
];

export const DEL_FLAGS: FlagSpec[] = [
  { name: 'from-key', kind: 'bool', defaultText: 'false', usage: 'delete keys that are greater than or equal to the given key using byte compare' },
  { name: 'prefix', kind: 'bool', defaultText: 'false', usage: 'delete keys with matching prefix' },
  { name: 'prev-kv', kind: 'bool', defaultText: 'false', usage: 'return deleted key-value pairs' },
];

const ZERO_KEY = Buffer.from([0]);

const SORT_TARGETS: Record<string, SortTarget> = { CREATE: 2, KEY: 0, MODIFY: 3, VALUE: 4, VERSION: 1 };

function applyRangeFlags(req: { key?: Buffer; range_end?: Buffer }, key: string, rangeEnd: string | undefined, prefix: boolean, fromKey: boolean): void {
  req.key = Buffer.from(key, 'utf8');
  if (rangeEnd !== undefined) req.range_end = Buffer.from(rangeEnd, 'utf8');
  if (prefix) {
    if (key.length === 0) {
      req.key = ZERO_KEY;
      req.range_end = ZERO_KEY;
    } else {
      req.range_end = prefixEnd(req.key);
    }
  }
  if (fromKey) {
    if (key.length === 0) req.key = ZERO_KEY;
    req.range_end = ZERO_KEY;
  }
}

/** getGetOp: positionals KEY [RANGE_END] (more are ignored, as etcdctl 3.4 does). */
export function buildRangeRequest(args: readonly string[], flags: ParsedFlags): RangeRequest {
  if (args.length === 0) throw new CtlError(ExitCode.BadArgs, 'get command needs one argument as key and an optional argument as range_end');
  const prefix = flags.bool('prefix');
  const fromKey = flags.bool('from-key');
  if (prefix && fromKey) throw new CtlError(ExitCode.BadArgs, '`--prefix` and `--from-key` cannot be set at the same time, choose one');
  const req: RangeRequest = {};
  const consistency = flags.string('consistency');
  if (consistency === 's') req.serializable = true;
  else if (consistency !== 'l') throw new CtlError(ExitCode.BadFeature, `unknown consistency flag ${goQuote(consistency)}`);
  if (args.length > 1 && (prefix || fromKey)) {
    throw new CtlError(ExitCode.BadArgs, 'too many arguments, only accept one argument when `--prefix` or `--from-key` is set');
  }
  applyRangeFlags(req, args[0]!, args[1], prefix, fromKey);
  const limit = flags.int('limit');
  if (limit !== 0n) req.limit = Number(limit);
  const rev = flags.int('rev');
  if (rev > 0n) req.revision = Number(rev);

  let order: SortOrder = 0;
  const orderText = flags.string('order');
  switch (orderText.toUpperCase()) {
    case 'ASCEND': order = 1; break;
    case 'DESCEND': order = 2; break;
    case '': break;
    default: throw new CtlError(ExitCode.BadFeature, `bad sort order ${orderText}`);
  }
  const sortText = flags.string('sort-by');
  let target: SortTarget = 0;
  if (sortText !== '') {
    const t = SORT_TARGETS[sortText.toUpperCase()];
    if (t === undefined) throw new CtlError(ExitCode.BadFeature, `bad sort target ${sortText}`);
    target = t;
  }
  if (target === 0 && order === 1) order = 0; // see the header: keys come sorted ascending anyway
  if (order !== 0) req.sort_order = order;
  if (target !== 0) req.sort_target = target;
  if (flags.bool('keys-only')) req.keys_only = true;
  if (flags.bool('count-only')) req.count_only = true;
  return req;
}

/**
 * getPutOp: KEY [VALUE]; without VALUE the value is all of stdin (`readStdin`), and an empty
 * stdin is the same usage error as a missing argument.
 */
export async function buildPutRequest(args: readonly string[], flags: ParsedFlags, readStdin: () => Promise<Buffer>): Promise<PutRequest> {
  const usage = 'put command needs 1 argument and input from stdin or 2 arguments';
  if (args.length === 0) throw new CtlError(ExitCode.BadArgs, usage);
  const ignoreValue = flags.bool('ignore-value');
  if (ignoreValue && args.length > 1) throw new CtlError(ExitCode.BadArgs, "put command needs only 1 argument when 'ignore-value' is set");
  const req: PutRequest = { key: Buffer.from(args[0]!, 'utf8') };
  if (!ignoreValue) {
    // Stdin is taken as raw bytes: a binary value must arrive unchanged.
    const value = args.length > 1 ? Buffer.from(args[1]!, 'utf8') : await readStdin();
    if (args.length <= 1 && value.length === 0) throw new CtlError(ExitCode.BadArgs, usage);
    req.value = value;
  }
  let lease: bigint;
  try {
    lease = goParseInt(flags.string('lease'), 16);
  } catch (err) {
    if (!(err instanceof GoSyntaxError)) throw err;
    throw new CtlError(ExitCode.BadArgs, `bad lease ID (${err.message}), expecting ID in Hex`);
  }
  if (lease !== 0n) req.lease = lease;
  if (flags.bool('prev-kv')) req.prev_kv = true;
  if (ignoreValue) req.ignore_value = true;
  if (flags.bool('ignore-lease')) req.ignore_lease = true;
  return req;
}

/** getDelOp: KEY [RANGE_END]. */
export function buildDeleteRequest(args: readonly string[], flags: ParsedFlags): DeleteRangeRequest {
  if (args.length === 0 || args.length > 2) throw new CtlError(ExitCode.BadArgs, 'del command needs one argument as key and an optional argument as range_end');
  const prefix = flags.bool('prefix');
  const fromKey = flags.bool('from-key');
  if (prefix && fromKey) throw new CtlError(ExitCode.BadArgs, '`--prefix` and `--from-key` cannot be set at the same time, choose one');
  if (args.length > 1 && (prefix || fromKey)) {
    throw new CtlError(ExitCode.BadArgs, 'too many arguments, only accept one argument when `--prefix` or `--from-key` is set');
  }
  const req: DeleteRangeRequest = {};
  applyRangeFlags(req, args[0]!, args[1], prefix, fromKey);
  if (flags.bool('prev-kv')) req.prev_kv = true;
  return req;
}
