/**
 * The JSON mapping of etcd 3.4's grpc-gateway (golang/protobuf jsonpb with OrigName), both ways.
 *
 * Requests: a JSON.parse'd body is walked with a per-message field table built once from our
 * protobufjs root. Names are accepted as in the .proto (snake_case) and as lowerCamelCase, as
 * jsonpb does; unknown fields are ignored; null means absent; bytes are Go base64; 64-bit ints are
 * numbers or strings (a string's inner text is re-parsed as JSON, as jsonpb does, hence etcd's odd
 * "invalid character 'e' in literal true" for "ten"); enums by name or number.
 * Errors carry Go's exact text (GatewayDecodeError), answered as INVALID_ARGUMENT.
 *
 * Responses: one hand-written encoder per response type builds the JSON string directly, fields in
 * .proto order, defaults (0, false, "", empty lists, absent messages) omitted, 64-bit ints as
 * decimal strings, bytes as base64. A present but empty message prints as {} (etcd prints the
 * empty header of a nested txn response that way).
 *
 * Example: PutResponse { header: { cluster_id: 1n, member_id: 2n, revision: 5, raft_term: 0 } }
 *   -> {"header":{"cluster_id":"1","member_id":"2","revision":"5"}}
 */
import protobuf from 'protobufjs';
import { messageType } from '../proto/codec.js';
import type {
  AlarmResponse, DefragmentResponse, HashKVResponse, HashResponse,
  CompactionResponse, DeleteRangeResponse, KeyValue, Member, MemberListResponse, MemberAddResponse, MoveLeaderResponse, PutResponse, RangeResponse,
  ResponseHeader, ResponseOp, StatusResponse, TxnResponse, Event, WatchResponse, LockResponse, CampaignResponse, LeaderKey, LeaderResponse,
  LeaseGrantResponse, LeaseKeepAliveResponse, LeaseLeasesResponse, LeaseRevokeResponse, LeaseTimeToLiveResponse,
} from '../proto/etcd-types.js';
import { EventType } from '../proto/etcd-types.js';
import { Base64Error, decodeGoBase64 } from './go-base64.js';
import { KeyraftError } from '../platform/errors.js';
import { Limits } from '../platform/limits.js';
import { JsonNumber, goJsonParse, isPlainJson } from './go-json-syntax.js';

/** A body or field the gateway cannot decode; the message is Go's text, the answer code 3. */
export class GatewayDecodeError extends Error {
  override name = 'GatewayDecodeError';
}

// ---------------------------------------------------------------------------------------------
// Requests

/** Fields whose 64-bit value is an id, kept as bigint (codec.ts converts the same names). */
const ID_FIELDS = new Set(['cluster_id', 'member_id', 'lease', 'ID', 'targetID', 'memberID', 'leader']);

type ScalarKind = 'bytes' | 'bool' | 'string' | 'int64' | 'uint64' | 'int32' | 'uint32' | 'double';

interface FieldSpec {
  /** The .proto name: the property set on the decoded object. */
  name: string;
  repeated: boolean;
  kind: ScalarKind | 'enum' | 'message';
  asBigInt: boolean;
  enumType?: protobuf.Enum;
  messageType?: protobuf.Type;
}

const SCALAR_KINDS: Record<string, ScalarKind> = {
  bytes: 'bytes', bool: 'bool', string: 'string',
  int64: 'int64', sint64: 'int64', sfixed64: 'int64',
  uint64: 'uint64', fixed64: 'uint64',
  int32: 'int32', sint32: 'int32', sfixed32: 'int32',
  uint32: 'uint32', fixed32: 'uint32',
  double: 'double', float: 'double',
};

const fieldTables = new Map<protobuf.Type, Map<string, FieldSpec>>();

function lowerCamel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

function fieldTable(type: protobuf.Type): Map<string, FieldSpec> {
  let table = fieldTables.get(type);
  if (table) return table;
  table = new Map();
  fieldTables.set(type, table);
  for (const field of type.fieldsArray) {
    field.resolve();
    const resolved = field.resolvedType;
    let spec: FieldSpec;
    if (resolved instanceof protobuf.Type) {
      spec = { name: field.name, repeated: field.repeated, kind: 'message', asBigInt: false, messageType: resolved };
    } else if (resolved instanceof protobuf.Enum) {
      spec = { name: field.name, repeated: field.repeated, kind: 'enum', asBigInt: false, enumType: resolved };
    } else {
      const kind = SCALAR_KINDS[field.type];
      if (kind === undefined) throw new Error(`gateway-json: unsupported field type ${field.type} in ${type.fullName}`);
      spec = { name: field.name, repeated: field.repeated, kind, asBigInt: ID_FIELDS.has(field.name) };
    }
    table.set(field.name, spec);
    table.set(lowerCamel(field.name), spec);
  }
  return table;
}

function jsonKind(value: unknown): string {
  if (Array.isArray(value)) return 'array';
  if (value instanceof JsonNumber) return 'number';
  switch (typeof value) {
    case 'string': return 'string';
    case 'number': return 'number';
    case 'boolean': return 'bool';
    default: return 'object';
  }
}

function typeError(value: unknown, goType: string): GatewayDecodeError {
  return new GatewayDecodeError(`json: cannot unmarshal ${jsonKind(value)} into Go value of type ${goType}`);
}

const INTEGER_TEXT = /^-?(?:0|[1-9][0-9]*)$/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

/**
 * An integer field from its JSON value, as jsonpb reads it: a number by its text, a string's inner
 * text re-read as JSON (json.Unmarshal into the Go integer type: white space around it is fine,
 * a fraction or an exponent is not). Never through a double: 9223372036854775807 is an int64.
 */
function decodeInteger(value: unknown, kind: 'int64' | 'uint64' | 'int32' | 'uint32', asBigInt: boolean): number | bigint {
  let text: string;
  if (value instanceof JsonNumber) {
    text = value.text;
  } else if (typeof value === 'number') {
    // Only from a plain body (isPlainJson): an integer of at most 15 digits, held exactly.
    text = String(value);
  } else if (typeof value === 'string') {
    text = value;
    if (!INTEGER_TEXT.test(text)) {
      const inner = goJsonParse(Buffer.from(text, 'utf8'), 'unmarshal');
      if (inner.error !== undefined) throw new GatewayDecodeError(inner.error);
      if (!(inner.value instanceof JsonNumber)) throw typeError(inner.value, kind);
      text = inner.value.text;
    }
  } else {
    throw typeError(value, kind);
  }
  if (!INTEGER_TEXT.test(text)) throw new GatewayDecodeError(`json: cannot unmarshal number ${text} into Go value of type ${kind}`);
  const big = BigInt(text);
  const [min, max] = kind === 'int64' ? [INT64_MIN, INT64_MAX]
    : kind === 'uint64' ? [0n, UINT64_MAX]
      : kind === 'int32' ? [-(2n ** 31n), 2n ** 31n - 1n] : [0n, 2n ** 32n - 1n];
  if (big < min || big > max) throw new GatewayDecodeError(`json: cannot unmarshal number ${text} into Go value of type ${kind}`);
  if (asBigInt) return big;
  // Revisions, counts and limits are numbers (CONVENTIONS); beyond 2^53 none can be a real value,
  // and the nearest double keeps its meaning: 9223372036854775807 as a revision is still a future
  // revision, as a limit still no limit.
  return Number(big);
}

function decodeScalar(spec: FieldSpec, value: unknown, depth: number, depthMax: number): unknown {
  switch (spec.kind) {
    case 'bytes':
      // encoding/json also fills a []byte from an array of numbers, one byte each.
      if (Array.isArray(value)) return bytesFromArray(value);
      if (typeof value !== 'string') throw typeError(value, '[]uint8');
      try {
        return decodeGoBase64(value);
      } catch (err) {
        if (err instanceof Base64Error) throw new GatewayDecodeError(err.message);
        throw err;
      }
    case 'bool':
      if (typeof value !== 'boolean') throw typeError(value, 'bool');
      return value;
    case 'string':
      if (typeof value !== 'string') throw typeError(value, 'string');
      return value;
    case 'double':
      if (value instanceof JsonNumber) return Number(value.text);
      if (typeof value !== 'number') throw typeError(value, 'float64');
      return value;
    case 'enum': {
      const enumType = spec.enumType!;
      if (typeof value === 'string') {
        const number = enumType.values[value];
        if (number === undefined) {
          throw new GatewayDecodeError(`unknown value ${JSON.stringify(value)} for enum ${goEnumName(enumType)}`);
        }
        return number;
      }
      return decodeInteger(value, 'int32', false);
    }
    case 'message':
      return decodeMessage(spec.messageType!, value, depth + 1, depthMax);
    default:
      return decodeInteger(value, spec.kind, spec.asBigInt);
  }
}

function bytesFromArray(list: unknown[]): Buffer {
  const out = Buffer.alloc(list.length);
  for (let i = 0; i < list.length; i++) {
    const v = list[i];
    if (v === null) continue;
    let text: string;
    if (v instanceof JsonNumber) text = v.text;
    else if (typeof v === 'number') text = String(v);
    else throw typeError(v, 'uint8');
    if (!/^(?:0|[1-9][0-9]{0,2})$/.test(text) || Number(text) > 255) throw new GatewayDecodeError(`json: cannot unmarshal number ${text} into Go value of type uint8`);
    out[i] = Number(text);
  }
  return out;
}

/** Go's name for a nested enum: etcdserverpb.RangeRequest_SortOrder. */
function goEnumName(enumType: protobuf.Enum): string {
  const parts: string[] = [];
  let node: protobuf.ReflectionObject | null = enumType;
  while (node && !(node instanceof protobuf.Namespace && !(node instanceof protobuf.Type))) {
    parts.unshift(node.name);
    node = node.parent;
  }
  const pkg = node && node.fullName ? node.fullName.replace(/^\./, '') : '';
  return (pkg ? pkg + '.' : '') + parts.join('_');
}

/**
 * Decodes one message from its JSON value (already parsed) into the etcd-types shape. `depth` is
 * the message's nesting (1 for the request); past `depthMax` the request is etcd's "too many
 * operations" (only TxnRequest nests without end: see parseBody).
 */
export function decodeMessage(type: protobuf.Type, value: unknown, depth = 1, depthMax = messageDepthMax(Limits.txnDepthMax)): any {
  if (value === null || value === undefined) return {};
  if (depth > depthMax) throw new KeyraftError('TooManyOps');
  // A number from Go's scanner is a JsonNumber object: still a number, not a message.
  if (typeof value !== 'object' || Array.isArray(value) || value instanceof JsonNumber) throw typeError(value, 'map[string]json.RawMessage');
  const table = fieldTable(type);
  const out: any = {};
  const source = value as Record<string, unknown>;
  for (const key in source) {
    const spec = table.get(key);
    if (spec === undefined) continue; // jsonpb as etcd configures it ignores unknown fields
    const fieldValue = source[key];
    if (fieldValue === null) continue;
    if (spec.repeated) {
      if (!Array.isArray(fieldValue)) throw typeError(fieldValue, '[]json.RawMessage');
      const list = new Array(fieldValue.length);
      for (let i = 0; i < fieldValue.length; i++) list[i] = decodeScalar(spec, fieldValue[i], depth, depthMax);
      out[spec.name] = list;
    } else {
      out[spec.name] = decodeScalar(spec, fieldValue, depth, depthMax);
    }
  }
  return out;
}

/**
 * The deepest message nesting of a request whose txns nest `txnDepthMax` deep: a TxnRequest at
 * level L is message 2L - 1 (RequestOp between levels), and its ops' requests one below the next
 * level's. One level of slack: the deepest level etcd can accept holds no ops, and a level beyond
 * it is refused by the op budget check just the same.
 */
export function messageDepthMax(txnDepthMax: number): number {
  return 2 * txnDepthMax + 3;
}

/**
 * Parses a request body as etcd's gateway does: an empty body (or `null`) is an empty request;
 * malformed JSON reports Go's decoder error; only the first JSON value counts (json.Decoder).
 * JSON.parse reads plain bodies (isPlainJson: the gateway's hot path); the rest go through Go's
 * scanner, which keeps numbers' text and refuses nesting beyond Go's limit. Txns nested deeper
 * than `txnDepthMax` are refused with etcd's "too many operations" (see Limits.txnDepthMax).
 */
export function parseBody(type: protobuf.Type, body: Buffer, txnDepthMax: number = Limits.txnDepthMax): any {
  if (body.length === 0) return {};
  let parsed: unknown;
  let plain = isPlainJson(body);
  if (plain) {
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      plain = false;
    }
  }
  if (!plain) {
    // Rare path: what Go would say, or Go's first value, numbers kept as written.
    const scan = goJsonParse(body, 'decoder');
    if (scan.error !== undefined) throw new GatewayDecodeError(scan.error);
    if (scan.empty) return {};
    parsed = scan.value;
  }
  return decodeMessage(type, parsed, 1, messageDepthMax(txnDepthMax));
}

export const requestTypes = {
  range: messageType('etcdserverpb.RangeRequest'),
  put: messageType('etcdserverpb.PutRequest'),
  deleteRange: messageType('etcdserverpb.DeleteRangeRequest'),
  txn: messageType('etcdserverpb.TxnRequest'),
  compaction: messageType('etcdserverpb.CompactionRequest'),
  memberList: messageType('etcdserverpb.MemberListRequest'),
  memberAdd: messageType('etcdserverpb.MemberAddRequest'),
  memberRemove: messageType('etcdserverpb.MemberRemoveRequest'),
  memberUpdate: messageType('etcdserverpb.MemberUpdateRequest'),
  memberPromote: messageType('etcdserverpb.MemberPromoteRequest'),
  status: messageType('etcdserverpb.StatusRequest'),
  moveLeader: messageType('etcdserverpb.MoveLeaderRequest'),
} as const;

// ---------------------------------------------------------------------------------------------
// Responses

/** Go's json string quoting: like JSON.stringify, plus \u003c \u003e \u0026 and U+2028/2029 escaped. */
export function goQuote(s: string): string {
  const quoted = JSON.stringify(s);
  return /[<>&\u2028\u2029]/.test(quoted)
    ? quoted.replace(/[<>&\u2028\u2029]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'))
    : quoted;
}

function base64(bytes: Uint8Array): string {
  return Buffer.isBuffer(bytes)
    ? bytes.toString('base64')
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

function uint64Text(v: bigint): string {
  return (v < 0n ? BigInt.asUintN(64, v) : v).toString();
}

/** The response header; zero fields are omitted as jsonpb omits proto3 defaults. */
function headerJson(h: ResponseHeader): string {
  let s = '';
  if (h.cluster_id) s += `"cluster_id":"${uint64Text(h.cluster_id)}"`;
  if (h.member_id) s += `${s ? ',' : ''}"member_id":"${uint64Text(h.member_id)}"`;
  if (h.revision) s += `${s ? ',' : ''}"revision":"${h.revision}"`;
  if (h.raft_term) s += `${s ? ',' : ''}"raft_term":"${h.raft_term}"`;
  return `{${s}}`;
}

export function keyValueJson(kv: KeyValue): string {
  let s = '';
  if (kv.key && kv.key.length) s += `"key":"${base64(kv.key)}"`;
  if (kv.create_revision) s += `${s ? ',' : ''}"create_revision":"${kv.create_revision}"`;
  if (kv.mod_revision) s += `${s ? ',' : ''}"mod_revision":"${kv.mod_revision}"`;
  if (kv.version) s += `${s ? ',' : ''}"version":"${kv.version}"`;
  if (kv.value && kv.value.length) s += `${s ? ',' : ''}"value":"${base64(kv.value)}"`;
  if (kv.lease) s += `${s ? ',' : ''}"lease":"${kv.lease.toString()}"`;
  return `{${s}}`;
}

function keyValuesJson(kvs: KeyValue[]): string {
  let s = '[';
  for (let i = 0; i < kvs.length; i++) s += (i ? ',' : '') + keyValueJson(kvs[i]!);
  return s + ']';
}

export function rangeResponseJson(r: RangeResponse): string {
  let s = '';
  if (r.header) s += `"header":${headerJson(r.header)}`;
  if (r.kvs && r.kvs.length) s += `${s ? ',' : ''}"kvs":${keyValuesJson(r.kvs)}`;
  if (r.more) s += `${s ? ',' : ''}"more":true`;
  if (r.count) s += `${s ? ',' : ''}"count":"${r.count}"`;
  return `{${s}}`;
}

export function putResponseJson(r: PutResponse): string {
  let s = '';
  if (r.header) s += `"header":${headerJson(r.header)}`;
  if (r.prev_kv) s += `${s ? ',' : ''}"prev_kv":${keyValueJson(r.prev_kv)}`;
  return `{${s}}`;
}

export function deleteRangeResponseJson(r: DeleteRangeResponse): string {
  let s = '';
  if (r.header) s += `"header":${headerJson(r.header)}`;
  if (r.deleted) s += `${s ? ',' : ''}"deleted":"${r.deleted}"`;
  if (r.prev_kvs && r.prev_kvs.length) s += `${s ? ',' : ''}"prev_kvs":${keyValuesJson(r.prev_kvs)}`;
  return `{${s}}`;
}

function responseOpJson(op: ResponseOp): string {
  if (op.response_range) return `{"response_range":${rangeResponseJson(op.response_range)}}`;
  if (op.response_put) return `{"response_put":${putResponseJson(op.response_put)}}`;
  if (op.response_delete_range) return `{"response_delete_range":${deleteRangeResponseJson(op.response_delete_range)}}`;
  if (op.response_txn) return `{"response_txn":${txnResponseJson(op.response_txn)}}`;
  return '{}';
}

export function txnResponseJson(r: TxnResponse): string {
  let s = '';
  if (r.header) s += `"header":${headerJson(r.header)}`;
  if (r.succeeded) s += `${s ? ',' : ''}"succeeded":true`;
  if (r.responses && r.responses.length) {
    s += `${s ? ',' : ''}"responses":[`;
    for (let i = 0; i < r.responses.length; i++) s += (i ? ',' : '') + responseOpJson(r.responses[i]!);
    s += ']';
  }
  return `{${s}}`;
}

/** mvccpb.Event as jsonpb writes it: the type by name, PUT (the default) omitted. */
function eventJson(e: Event): string {
  let s = '';
  if (e.type === EventType.DELETE) s += '"type":"DELETE"';
  if (e.kv) s += `${s ? ',' : ''}"kv":${keyValueJson(e.kv)}`;
  if (e.prev_kv) s += `${s ? ',' : ''}"prev_kv":${keyValueJson(e.prev_kv)}`;
  return `{${s}}`;
}

/** A WatchResponse, one `{"result": ...}` line of POST /v3/watch (checked against etcd 3.4.23's gateway). */
export function watchResponseJson(r: WatchResponse): string {
  let s = '';
  if (r.header) s += `"header":${headerJson(r.header)}`;
  if (r.watch_id) s += `${s ? ',' : ''}"watch_id":"${r.watch_id}"`;
  if (r.created) s += `${s ? ',' : ''}"created":true`;
  if (r.canceled) s += `${s ? ',' : ''}"canceled":true`;
  if (r.compact_revision) s += `${s ? ',' : ''}"compact_revision":"${r.compact_revision}"`;
  if (r.cancel_reason) s += `${s ? ',' : ''}"cancel_reason":${goQuote(r.cancel_reason)}`;
  if (r.fragment) s += `${s ? ',' : ''}"fragment":true`;
  if (r.events && r.events.length) s += `${s ? ',' : ''}"events":[${r.events.map(eventJson).join(',')}]`;
  return `{${s}}`;
}

export function compactionResponseJson(r: CompactionResponse): string {
  return r.header ? `{"header":${headerJson(r.header)}}` : '{}';
}

function stringListJson(list: string[]): string {
  let s = '[';
  for (let i = 0; i < list.length; i++) s += (i ? ',' : '') + goQuote(list[i]!);
  return s + ']';
}

function memberJson(m: Member): string {
  let s = '';
  if (m.ID) s += `"ID":"${uint64Text(m.ID)}"`;
  if (m.name) s += `${s ? ',' : ''}"name":${goQuote(m.name)}`;
  if (m.peerURLs && m.peerURLs.length) s += `${s ? ',' : ''}"peerURLs":${stringListJson(m.peerURLs)}`;
  if (m.clientURLs && m.clientURLs.length) s += `${s ? ',' : ''}"clientURLs":${stringListJson(m.clientURLs)}`;
  if (m.isLearner) s += `${s ? ',' : ''}"isLearner":true`;
  return `{${s}}`;
}

export function memberListResponseJson(r: MemberListResponse): string {
  let s = '';
  if (r.header) s += `"header":${headerJson(r.header)}`;
  if (r.members && r.members.length) {
    s += `${s ? ',' : ''}"members":[`;
    for (let i = 0; i < r.members.length; i++) s += (i ? ',' : '') + memberJson(r.members[i]!);
    s += ']';
  }
  return `{${s}}`;
}

/** MemberAddResponse: the added member, then every member (etcd's field order). */
export function memberAddResponseJson(r: MemberAddResponse): string {
  let s = '';
  if (r.header) s += `"header":${headerJson(r.header)}`;
  if (r.member) s += `${s ? ',' : ''}"member":${memberJson(r.member)}`;
  const members = memberListResponseJson({ members: r.members });
  if (members !== '{}') s += `${s ? ',' : ''}${members.slice(1, -1)}`;
  return `{${s}}`;
}

/** MoveLeaderResponse: the header alone. */
export function moveLeaderResponseJson(r: MoveLeaderResponse): string {
  return r.header ? `{"header":${headerJson(r.header)}}` : '{}';
}

export function statusResponseJson(r: StatusResponse): string {
  let s = '';
  if (r.header) s += `"header":${headerJson(r.header)}`;
  if (r.version) s += `${s ? ',' : ''}"version":${goQuote(r.version)}`;
  if (r.dbSize) s += `${s ? ',' : ''}"dbSize":"${r.dbSize}"`;
  if (r.leader) s += `${s ? ',' : ''}"leader":"${uint64Text(r.leader)}"`;
  if (r.raftIndex) s += `${s ? ',' : ''}"raftIndex":"${r.raftIndex}"`;
  if (r.raftTerm) s += `${s ? ',' : ''}"raftTerm":"${r.raftTerm}"`;
  if (r.raftAppliedIndex) s += `${s ? ',' : ''}"raftAppliedIndex":"${r.raftAppliedIndex}"`;
  if (r.errors && r.errors.length) s += `${s ? ',' : ''}"errors":${stringListJson(r.errors)}`;
  if (r.dbSizeInUse) s += `${s ? ',' : ''}"dbSizeInUse":"${r.dbSizeInUse}"`;
  if (r.isLearner) s += `${s ? ',' : ''}"isLearner":true`;
  return `{${s}}`;
}

const ALARM_TYPE_NAMES = ['NONE', 'NOSPACE', 'CORRUPT'];

/** AlarmResponse as jsonpb writes it: memberID as a string, the alarm type by name, zeros omitted. */
export function alarmResponseJson(r: AlarmResponse): string {
  let s = r.header ? `"header":${headerJson(r.header)}` : '';
  if (r.alarms && r.alarms.length) {
    const alarms = r.alarms.map((a) => {
      let m = a.memberID ? `"memberID":"${uint64Text(a.memberID)}"` : '';
      if (a.alarm) m += `${m ? ',' : ''}"alarm":${goQuote(ALARM_TYPE_NAMES[a.alarm] ?? String(a.alarm))}`;
      return `{${m}}`;
    });
    s += `${s ? ',' : ''}"alarms":[${alarms.join(',')}]`;
  }
  return `{${s}}`;
}

export function defragmentResponseJson(r: DefragmentResponse): string {
  return r.header ? `{"header":${headerJson(r.header)}}` : '{}';
}

/** HashResponse: hash is a uint32, a JSON number. */
export function hashResponseJson(r: HashResponse): string {
  let s = r.header ? `"header":${headerJson(r.header)}` : '';
  if (r.hash) s += `${s ? ',' : ''}"hash":${r.hash}`;
  return `{${s}}`;
}

/** HashKVResponse: hash a number, compact_revision (int64) a string. */
export function hashKVResponseJson(r: HashKVResponse): string {
  let s = r.header ? `"header":${headerJson(r.header)}` : '';
  if (r.hash) s += `${s ? ',' : ''}"hash":${r.hash}`;
  if (r.compact_revision) s += `${s ? ',' : ''}"compact_revision":"${r.compact_revision}"`;
  return `{${s}}`;
}

/** The gateway's error body: {"error":m,"message":m,"code":c}, in etcd 3.4's field order. */
export function errorJson(message: string, grpcCode: number): string {
  const quoted = goQuote(message);
  return `{"error":${quoted},"message":${quoted},"code":${grpcCode}}`;
}

// ---- Lease -------------------------------------------------------------------------------------
// etcd's gateway prints lease ids and TTLs as signed int64 strings under their .proto names
// (ID, TTL, grantedTTL), omitting zero values: a TTL of -1 (unknown lease) is printed.

function int64Field(name: string, v: bigint | number | undefined, s: string): string {
  if (v === undefined || v === 0 || v === 0n) return s;
  return `${s}${s ? ',' : ''}"${name}":"${v}"`;
}

export function leaseGrantResponseJson(r: LeaseGrantResponse): string {
  let s = r.header ? `"header":${headerJson(r.header)}` : '';
  s = int64Field('ID', r.ID, s);
  s = int64Field('TTL', r.TTL, s);
  if (r.error) s += `${s ? ',' : ''}"error":${goQuote(r.error)}`;
  return `{${s}}`;
}

export function leaseRevokeResponseJson(r: LeaseRevokeResponse): string {
  return r.header ? `{"header":${headerJson(r.header)}}` : '{}';
}

export function leaseKeepAliveResponseJson(r: LeaseKeepAliveResponse): string {
  let s = r.header ? `"header":${headerJson(r.header)}` : '';
  s = int64Field('ID', r.ID, s);
  s = int64Field('TTL', r.TTL, s);
  return `{${s}}`;
}

export function leaseTimeToLiveResponseJson(r: LeaseTimeToLiveResponse): string {
  let s = r.header ? `"header":${headerJson(r.header)}` : '';
  s = int64Field('ID', r.ID, s);
  s = int64Field('TTL', r.TTL, s);
  s = int64Field('grantedTTL', r.grantedTTL, s);
  if (r.keys && r.keys.length) s += `${s ? ',' : ''}"keys":[${r.keys.map((k) => `"${base64(k)}"`).join(',')}]`;
  return `{${s}}`;
}

export function leaseLeasesResponseJson(r: LeaseLeasesResponse): string {
  let s = r.header ? `"header":${headerJson(r.header)}` : '';
  if (r.leases.length) s += `${s ? ',' : ''}"leases":[${r.leases.map((l) => (l.ID ? `{"ID":"${l.ID}"}` : '{}')).join(',')}]`;
  return `{${s}}`;
}

/** v3lockpb.LockResponse: the held key in Go's base64, as jsonpb writes bytes. */
export function lockResponseJson(r: LockResponse): string {
  let s = r.header ? `"header":${headerJson(r.header)}` : '';
  if (r.key.length > 0) s += `${s ? ',' : ''}"key":"${r.key.toString('base64')}"`;
  return `{${s}}`;
}

/** Responses that carry only a header (v3lockpb.UnlockResponse). */
export function headerOnlyResponseJson(r: { header?: ResponseHeader }): string {
  return r.header ? `{"header":${headerJson(r.header)}}` : '{}';
}

/** v3electionpb.LeaderKey: name and key in base64, rev and lease as strings, zero fields omitted. */
function leaderKeyJson(l: LeaderKey): string {
  let s = '';
  if (l.name && l.name.length) s += `"name":"${base64(l.name)}"`;
  if (l.key && l.key.length) s += `${s ? ',' : ''}"key":"${base64(l.key)}"`;
  s = int64Field('rev', l.rev, s);
  s = int64Field('lease', l.lease, s);
  return `{${s}}`;
}

/** v3electionpb.CampaignResponse {header, leader}. */
export function campaignResponseJson(r: CampaignResponse): string {
  let s = r.header ? `"header":${headerJson(r.header)}` : '';
  if (r.leader) s += `${s ? ',' : ''}"leader":${leaderKeyJson(r.leader)}`;
  return `{${s}}`;
}

/** v3electionpb.LeaderResponse {header, kv} (Leader, and each message of Observe). */
export function leaderResponseJson(r: LeaderResponse): string {
  let s = r.header ? `"header":${headerJson(r.header)}` : '';
  if (r.kv) s += `${s ? ',' : ''}"kv":${keyValueJson(r.kv)}`;
  return `{${s}}`;
}
