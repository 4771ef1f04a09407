/**
 * `txn` input, read as etcdctl 3.4 reads it: three blocks of lines, each ended by an empty line:
 *
 *   compares:                          value("k") = "v"      version("k") > "3"
 *                                      create("k") < "5"     mod("k") != "2"     lease("k") = "694d..."
 *   success requests (get, put, del):  put k v --prev-kv     get k --prefix       del k
 *   failure requests (get, put, del):  ...
 *
 * Every line must end with a newline: input that stops mid-block fails with "EOF", as etcdctl's
 * bufio ReadString does. With -i the block titles above are printed as prompts.
 *
 * A compare is `TARGET(KEY) OP VALUE`, scanned like Go's fmt.Sscanf(rest, "%q) %s %q"): KEY and
 * VALUE are Go quoted strings, a space in that format needs at least one space in the input, and
 * text after VALUE is ignored. Targets: ver|version, c|create, m|mod (decimal), val|value (bytes),
 * lease (hexadecimal). Ops: = != < >.
 * Worked example: `mod("k") > "4"` -> {key: "k", target: MOD, result: GREATER, mod_revision: 4}.
 * A request line is split into words (double quotes with Go escapes, or single quotes) and parsed
 * with the flags of the get, put and del commands.
 */
import type { Compare, CompareResult, RequestOp, TxnRequest } from '../proto/etcd-types.js';
import { parseCommandLine, type CommandSpec } from './ctl-args.js';
import { CtlError, ExitCode } from './ctl-exit.js';
import { goParseInt, goQuote, GoSyntaxError, scanGoQuoted } from './ctl-go-text.js';
import { buildDeleteRequest, buildPutRequest, buildRangeRequest, DEL_FLAGS, GET_FLAGS, PUT_FLAGS } from './ctl-kv-ops.js';

/** Lines of input; undefined once no complete (newline-terminated) line is left. */
export interface LineSource {
  readLine(): Promise<string | undefined>;
}

export const TXN_PROMPTS = {
  compares: 'compares:',
  success: 'success requests (get, put, del):',
  failure: 'failure requests (get, put, del):',
} as const;

const RESULTS: Record<string, CompareResult> = { '=': 0, '>': 1, '<': 2, '!=': 3 };

/** Reads the three blocks from `lines`; `prompt` is called before each when interactive. */
export async function readTxnRequest(lines: LineSource, prompt: ((title: string) => void) | undefined): Promise<TxnRequest> {
  prompt?.(TXN_PROMPTS.compares);
  const compare: Compare[] = [];
  for (let line = await nextBlockLine(lines); line !== undefined; line = await nextBlockLine(lines)) compare.push(parseCompare(line));
  prompt?.(TXN_PROMPTS.success);
  const success = await readOps(lines);
  prompt?.(TXN_PROMPTS.failure);
  const failure = await readOps(lines);
  return { compare, success, failure };
}

async function readOps(lines: LineSource): Promise<RequestOp[]> {
  const ops: RequestOp[] = [];
  for (let line = await nextBlockLine(lines); line !== undefined; line = await nextBlockLine(lines)) ops.push(await parseRequestLine(line));
  return ops;
}

/** The next trimmed line of a block, undefined at the empty line that ends it. */
async function nextBlockLine(lines: LineSource): Promise<string | undefined> {
  const raw = await lines.readLine();
  if (raw === undefined) throw new CtlError(ExitCode.InvalidInput, 'EOF');
  const line = raw.trim();
  return line.length === 0 ? undefined : line;
}

/** Result of scanning "%q) %s %q": how many operands were read, as Sscanf's n. */
interface CompareScan {
  n: number;
  key: Buffer;
  op: string;
  value: Buffer;
}

function scanCompareOperands(text: string): CompareScan {
  const scan: CompareScan = { n: 0, key: Buffer.alloc(0), op: '', value: Buffer.alloc(0) };
  let i = 0;
  const skipSpaces = () => { while (i < text.length && /[ \t\r]/.test(text[i]!)) i++; };
  // A format space: one or more input spaces, or the end of the input.
  const formatSpace = () => {
    if (i >= text.length) return true;
    if (!/[ \t\r]/.test(text[i]!)) return false;
    skipSpaces();
    return true;
  };
  skipSpaces();
  const key = scanGoQuoted(text, i);
  if (!key) return scan;
  scan.key = key.value;
  scan.n = 1;
  i = key.end;
  if (text[i] !== ')') return scan;
  i++;
  if (!formatSpace()) return scan;
  skipSpaces();
  const opStart = i;
  while (i < text.length && !/\s/.test(text[i]!)) i++;
  if (i === opStart) return scan;
  scan.op = text.slice(opStart, i);
  scan.n = 2;
  if (!formatSpace()) return scan;
  skipSpaces();
  const value = scanGoQuoted(text, i);
  if (!value) return scan;
  scan.value = value.value;
  scan.n = 3;
  return scan;
}

/** One compare line; errors are etcdctl's texts with exit code 3 (invalid input). */
export function parseCompare(line: string): Compare {
  const paren = line.indexOf('(');
  if (paren < 0) throw new CtlError(ExitCode.InvalidInput, `malformed comparison: ${line}`);
  const target = line.slice(0, paren);
  const scan = scanCompareOperands(line.slice(paren + 1));
  if (scan.n !== 3) {
    throw new CtlError(ExitCode.InvalidInput,
      `malformed comparison: ${line}; got ${target}(${goQuote(scan.key.toString('utf8'))}) ${scan.op} ${goQuote(scan.value.toString('utf8'))}`);
  }
  const cmp: Compare = { key: scan.key };
  const valueText = scan.value.toString('utf8');
  const invalid = () => new CtlError(ExitCode.InvalidInput, `invalid txn compare request: ${line}`);
  const parseNumber = (base: 10 | 16): bigint => {
    try {
      return goParseInt(valueText, base);
    } catch (err) {
      if (err instanceof GoSyntaxError) throw invalid();
      throw err;
    }
  };
  switch (target) {
    case 'ver':
    case 'version':
      cmp.target = 0;
      cmp.version = Number(parseNumber(10));
      break;
    case 'c':
    case 'create':
      cmp.target = 1;
      cmp.create_revision = Number(parseNumber(10));
      break;
    case 'm':
    case 'mod':
      cmp.target = 2;
      cmp.mod_revision = Number(parseNumber(10));
      break;
    case 'val':
    case 'value':
      cmp.target = 3;
      cmp.value = scan.value;
      break;
    case 'lease':
      // etcdctl 3.4 panics here (it passes the string on); 3.5 reads a hex lease id, as we do.
      cmp.target = 4;
      cmp.lease = parseNumber(16);
      break;
    default:
      throw new CtlError(ExitCode.InvalidInput, `malformed comparison: ${line} (unknown target ${target})`);
  }
  const result = RESULTS[scan.op];
  // etcdctl panics on an unknown operator; a clear error serves better.
  if (result === undefined) throw new CtlError(ExitCode.InvalidInput, `invalid txn compare request: ${line} (unknown operator ${scan.op})`);
  cmp.result = result;
  return cmp;
}

/** etcdctl's Argify: words, "double quoted" (Go escapes) or 'single quoted'. */
export function splitRequestWords(line: string): string[] {
  const words = line.match(/"(?:[^"\\]|\\.)*"|'[^']*'|[^'"\s]\S*[^'"\s]?/g) ?? [];
  return words.map((word) => {
    if (word.startsWith("'")) return word.slice(1, -1);
    if (word.startsWith('"')) {
      const quoted = scanGoQuoted(word, 0);
      if (!quoted) throw new CtlError(ExitCode.InvalidInput, 'invalid syntax');
      return quoted.value.toString('utf8');
    }
    return word;
  });
}

const TXN_OP_COMMANDS: CommandSpec[] = [
  { path: ['get'], use: 'get [options] <key> [range_end]', summary: 'Gets the key or a range of keys', flags: GET_FLAGS },
  { path: ['put'], use: 'put [options] <key> <value>', summary: 'Puts the given key into the store', flags: PUT_FLAGS },
  { path: ['del'], use: 'del [options] <key> [range_end]', summary: 'Removes the specified key or range of keys [key, range_end)', flags: DEL_FLAGS },
];

/** One request line of the success or failure block. */
export async function parseRequestLine(line: string): Promise<RequestOp> {
  const words = splitRequestWords(line);
  if (words.length < 2) throw new CtlError(ExitCode.InvalidInput, `invalid txn compare request: ${line}`);
  let parsed;
  try {
    parsed = parseCommandLine(words, TXN_OP_COMMANDS, [], {}, 'txn');
  } catch (err) {
    if (err instanceof CtlError) throw new CtlError(ExitCode.InvalidInput, `invalid txn request: ${line}`);
    throw err;
  }
  if (!parsed.command || parsed.help) throw new CtlError(ExitCode.InvalidInput, `invalid txn request: ${line}`);
  switch (parsed.command.path[0]) {
    case 'get': return { request_range: buildRangeRequest(parsed.args, parsed.flags) };
    // Stdin has been consumed by the txn itself: a put without a value is a usage error.
    case 'put': return { request_put: await buildPutRequest(parsed.args, parsed.flags, async () => Buffer.alloc(0)) };
    default: return { request_delete_range: buildDeleteRequest(parsed.args, parsed.flags) };
  }
}
