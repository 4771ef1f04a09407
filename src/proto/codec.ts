import protobuf from 'protobufjs';
import { isAbsolute, join } from 'node:path';
import { protocolDir } from '../platform/package-root.js';

/**
 * The one place protobuf bytes become TypeScript objects and back (etcd-types.ts describes the
 * shapes). protobufjs decodes 64-bit fields as Long; this codec converts them once:
 * ids (fields named in ID_FIELDS) to bigint, every other 64-bit field (revisions, counts,
 * versions, terms) to number. On encode, bigint ids become Long again (protobufjs would
 * silently write 0 for a bigint).
 *
 * Worked example: a RangeRequest on the wire with revision=5 decodes in protobufjs to
 * { revision: Long(5) }, and `decode` returns { revision: 5 }. A PutRequest with lease
 * 0x694d7d7c6b2e1a04 decodes to { lease: 7587869326594528772n }.
 */

const ID_FIELDS = new Set(['cluster_id', 'member_id', 'lease', 'ID', 'targetID', 'memberID', 'leader']);
const LONG_TYPES = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);

function loadRoot(): protobuf.Root {
  const root = new protobuf.Root();
  // Imports are written relative to protocol/ ("etcd/kv.proto").
  root.resolvePath = (_origin, target) => (isAbsolute(target) ? target : join(protocolDir, target));
  root.loadSync(['etcd/rpc.proto', 'etcd/v3lock.proto', 'etcd/v3election.proto', 'keyraft/internal.proto'], { keepCase: true });
  root.resolveAll();
  return root;
}

/** All etcd and keyraft message types, keyCase kept (snake_case field names as in the .proto). */
export const protoRoot = loadRoot();

type Converter = (value: any) => any;

interface FieldPlan {
  name: string;
  repeated: boolean;
  kind: 'number' | 'bigint' | 'message';
  child?: Converter;
}

const decodeConverters = new Map<protobuf.Type, Converter>();
const encodeConverters = new Map<protobuf.Type, Converter>();

function longToNumber(v: any): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') return Number(v);
  return (v as { toNumber(): number }).toNumber();
}

function longToBigInt(v: any, unsigned: boolean): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') return BigInt(v);
  if (typeof v === 'string') return BigInt(v);
  const long = v as { high: number; low: number };
  const big = (BigInt(long.high >>> 0) << 32n) | BigInt(long.low >>> 0);
  return unsigned ? big : BigInt.asIntN(64, big);
}

function bigIntToLong(v: any, unsigned: boolean): any {
  if (typeof v !== 'bigint') return v;
  const bits = BigInt.asUintN(64, v);
  return protobuf.util.LongBits
    ? new (protobuf.util.Long as any)(Number(bits & 0xffffffffn) | 0, Number(bits >> 32n) | 0, unsigned)
    : v.toString();
}

function plan(type: protobuf.Type, direction: 'decode' | 'encode'): FieldPlan[] {
  const plans: FieldPlan[] = [];
  for (const field of type.fieldsArray) {
    field.resolve();
    if (LONG_TYPES.has(field.type)) {
      const unsigned = field.type === 'uint64' || field.type === 'fixed64';
      const isId = ID_FIELDS.has(field.name);
      if (direction === 'encode' && !isId) continue; // numbers encode as they are
      plans.push({
        name: field.name,
        repeated: field.repeated,
        kind: isId ? 'bigint' : 'number',
        child: direction === 'decode'
          ? (isId ? (v) => longToBigInt(v, unsigned) : longToNumber)
          : (v) => bigIntToLong(v, unsigned),
      });
    } else if (field.resolvedType instanceof protobuf.Type) {
      const childType = field.resolvedType;
      plans.push({
        name: field.name,
        repeated: field.repeated,
        kind: 'message',
        child: (v) => converterFor(childType, direction)(v),
      });
    }
  }
  return plans;
}

function converterFor(type: protobuf.Type, direction: 'decode' | 'encode'): Converter {
  if (direction === 'encode') return encodeConverterFor(type);
  let converter = decodeConverters.get(type);
  if (converter) return converter;
  // Placeholder breaks recursion for self-referencing types (TxnRequest holds RequestOp holds TxnRequest).
  let plans: FieldPlan[] | undefined;
  converter = (obj: any) => {
    if (obj == null) return obj;
    plans ??= plan(type, direction);
    for (let i = 0; i < plans.length; i++) {
      const p = plans[i]!;
      const value = obj[p.name];
      if (value == null) continue;
      if (p.repeated) {
        const arr = value as any[];
        for (let j = 0; j < arr.length; j++) arr[j] = p.child!(arr[j]);
      } else {
        obj[p.name] = p.child!(value);
      }
    }
    return obj;
  };
  decodeConverters.set(type, converter);
  return converter;
}

/**
 * The encode side copies on write: it returns `obj` itself when nothing under it holds a bigint
 * id, else a shallow copy of each object (and array) on the way down to one, with the id as a
 * Long. The caller's objects are never changed, and the parts without ids (a range's values, a
 * txn's ops without leases) are not copied: the full copy of every message before its encode that
 * this replaces was ~3% of the CPU of a unary put (unary-cpu.ts --only put-one-key-256B, node
 * --cpu-prof: 96 of 4,311 ms).
 */
function encodeConverterFor(type: protobuf.Type): Converter {
  let converter = encodeConverters.get(type);
  if (converter) return converter;
  let plans: FieldPlan[] | undefined;
  converter = (obj: any) => {
    if (obj == null) return obj;
    plans ??= plan(type, 'encode');
    let out: any;
    for (let i = 0; i < plans.length; i++) {
      const p = plans[i]!;
      const value = obj[p.name];
      if (value == null) continue;
      if (p.repeated) {
        const arr = value as any[];
        let copy: any[] | undefined;
        for (let j = 0; j < arr.length; j++) {
          const item = arr[j];
          const converted = p.child!(item);
          if (converted !== item) {
            copy ??= arr.slice();
            copy[j] = converted;
          }
        }
        if (copy !== undefined) {
          out ??= { ...obj };
          out[p.name] = copy;
        }
      } else {
        const converted = p.child!(value);
        if (converted !== value) {
          out ??= { ...obj };
          out[p.name] = converted;
        }
      }
    }
    return out ?? obj;
  };
  encodeConverters.set(type, converter);
  return converter;
}

export function messageType(fullName: string): protobuf.Type {
  return protoRoot.lookupType(fullName);
}

/**
 * Decodes bytes into the plain object shape of etcd-types.ts. Fields absent on the wire read as
 * proto3 defaults from the prototype (0 for numbers after conversion of the Long default is not
 * done: read 64-bit fields through `?? 0`, or use `decodeToObject` for a full object).
 */
export function decode<T>(type: protobuf.Type, bytes: Uint8Array): T {
  const message = type.decode(bytes);
  // toObject with defaults:false keeps only present fields as own properties (no Long defaults).
  const obj = type.toObject(message, { defaults: false, arrays: true });
  return converterFor(type, 'decode')(obj) as T;
}

/** Converts a protobufjs-shaped object (Longs, from decode or fromObject) into etcd-types.ts shape. */
export function normalizeDecoded<T>(type: protobuf.Type, obj: any): T {
  return converterFor(type, 'decode')(obj) as T;
}

/**
 * One writer reused by every encode. protobufjs 8's writer starts at 128 bytes and doubles,
 * copying at each step, and finish() copies once more: a 300-byte put entry cost four pooled
 * allocations, and those pool refills (8 KiB ArrayBuffers) were ~150 ms of 2.9 s of main-thread
 * CPU in 40,000 gRPC puts (h2load -c 10 -m 10, node --cpu-prof). Reused, an encode allocates only
 * its exact-size result. Encoding is synchronous and never re-entered, so one writer serves all.
 */
let sharedWriter = protobuf.Writer.create();
/** A writer grown past this by one huge message is dropped rather than kept for good. */
const SHARED_WRITER_KEPT_BYTES_MAX = 1 << 20;

/** Encodes an etcd-types.ts shaped object. Does not mutate `obj`. */
export function encode(type: protobuf.Type, obj: object): Uint8Array {
  const writer = sharedWriter as protobuf.Writer & { pos: number; states: number[] | null; buf: Uint8Array };
  writer.pos = 0;
  writer.states = null;
  const out = type.encode(prepareForEncode(type, obj), writer).finish();
  if (writer.buf.length > SHARED_WRITER_KEPT_BYTES_MAX) sharedWriter = protobuf.Writer.create();
  return out;
}

/**
 * `obj` ready for protobufjs' encoder: bigint ids as Longs. Returns `obj` itself when it holds no
 * bigint id, else copies of the objects on the way to each (never changes `obj`).
 */
export function prepareForEncode(type: protobuf.Type, obj: object): object {
  return encodeConverterFor(type)(obj);
}
