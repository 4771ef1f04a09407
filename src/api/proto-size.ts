/**
 * The protobuf-encoded size of a decoded request, computed from the message descriptors without
 * encoding. The gateway needs it because etcd measures limits on the gRPC message its gateway
 * forwards: the gRPC receive limit (max-request-bytes + 512 KiB) and, for writes, the proposal
 * size (request-validation.ts). Sizes follow the proto3 wire format: a scalar at its default is
 * not written unless it is a set oneof member; a present message is, even empty.
 */
import protobuf from 'protobufjs';
import { bigVarintSize, varintSize } from '../proto/varint.js';

interface SizeField {
  name: string;
  tagBytes: number;
  repeated: boolean;
  /** A oneof member is written whenever it is set, even to its default (0, empty). */
  inOneof: boolean;
  kind: 'bytes' | 'string' | 'varint' | 'bool' | 'fixed32' | 'fixed64' | 'message';
  messageType?: protobuf.Type;
}

const plans = new Map<protobuf.Type, SizeField[]>();


function planFor(type: protobuf.Type): SizeField[] {
  let plan = plans.get(type);
  if (plan) return plan;
  plan = [];
  plans.set(type, plan);
  for (const field of type.fieldsArray) {
    field.resolve();
    const tagBytes = varintSize(field.id * 8);
    let kind: SizeField['kind'];
    if (field.resolvedType instanceof protobuf.Type) kind = 'message';
    else if (field.type === 'bytes') kind = 'bytes';
    else if (field.type === 'string') kind = 'string';
    else if (field.type === 'bool') kind = 'bool';
    else if (field.type === 'fixed32' || field.type === 'sfixed32' || field.type === 'float') kind = 'fixed32';
    else if (field.type === 'fixed64' || field.type === 'sfixed64' || field.type === 'double') kind = 'fixed64';
    else kind = 'varint';
    plan.push({ name: field.name, tagBytes, repeated: field.repeated, inOneof: field.partOf != null, kind, messageType: kind === 'message' ? field.resolvedType as protobuf.Type : undefined });
  }
  return plan;
}

function valueSize(f: SizeField, v: any): number {
  switch (f.kind) {
    case 'bytes': return varintSize(v.length) + v.length;
    case 'string': {
      const n = Buffer.byteLength(v as string, 'utf8');
      return varintSize(n) + n;
    }
    case 'bool': return 1;
    case 'fixed32': return 4;
    case 'fixed64': return 8;
    case 'varint': return typeof v === 'bigint' ? bigVarintSize(v) : varintSize(v as number);
    case 'message': {
      const n = protoSizeOf(f.messageType!, v);
      return varintSize(n) + n;
    }
  }
}

function isDefault(f: SizeField, v: any): boolean {
  if (v === undefined || v === null) return true;
  switch (f.kind) {
    case 'bytes': return v.length === 0;
    case 'string': return v === '';
    case 'message': return false;
    default: return !v;
  }
}

/** Encoded size in bytes of `obj` (etcd-types shape) as message `type`. */
export function protoSizeOf(type: protobuf.Type, obj: any): number {
  const plan = planFor(type);
  let size = 0;
  for (let i = 0; i < plan.length; i++) {
    const f = plan[i]!;
    const v = obj[f.name];
    if (f.repeated) {
      if (!v) continue;
      for (let j = 0; j < v.length; j++) size += f.tagBytes + valueSize(f, v[j] ?? {});
    } else if (f.inOneof ? v !== undefined && v !== null : !isDefault(f, v)) {
      size += f.tagBytes + valueSize(f, v);
    }
  }
  return size;
}
