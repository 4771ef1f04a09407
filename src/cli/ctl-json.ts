/**
 * `-w json` output as etcdctl writes it: Go's encoding/json applied to the gogoproto structs
 * of etcd's API. The rules that follow from that, and that this encoder reproduces:
 *
 * - Fields appear in .proto declaration order under their .proto names ("cluster_id", "dbSize",
 *   "ID", "peerURLs"), which is what our keepCase protobufjs root also uses.
 * - Every field is `omitempty`: zero numbers, false, "", empty bytes and empty lists are left out;
 *   a set sub-message is printed even when all its fields are zero ("header":{}).
 * - 64-bit integers are JSON numbers, exact: cluster_id 324952591200643719 must not become
 *   324952591200643700, so numbers are written by hand from bigint, never via JSON.stringify.
 * - Bytes are standard base64. Enums are their numbers.
 * - A oneof is a Go interface field named after the oneof in CamelCase, holding a wrapper struct
 *   whose one field is the member's CamelCase name: {"Response":{"ResponsePut":{...}}}.
 * - Strings escape <, > and & as \u003c, \u003e, \u0026 (Go's HTML-safe default).
 */
import protobuf from 'protobufjs';

/** Go's CamelCase for a proto name: "response_put" -> "ResponsePut". */
function goCamelCase(name: string): string {
  return name.split('_').map((part) => part.charAt(0).toUpperCase() + part.slice(1)).join('');
}

/** A JSON string literal as Go's encoding/json writes it. */
export function goJsonString(text: string): string {
  return JSON.stringify(text)
    .replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
    .replace(/\\b/g, '\\u0008')
    .replace(/\\f/g, '\\u000c');
}

function isZero(field: protobuf.Field, value: unknown): boolean {
  if (value === undefined || value === null) return true;
  if (field.repeated) return (value as unknown[]).length === 0;
  if (field.resolvedType instanceof protobuf.Type) return false;
  if (typeof value === 'number' || typeof value === 'bigint') return value == 0;
  if (typeof value === 'boolean') return !value;
  if (typeof value === 'string') return value.length === 0;
  if (value instanceof Uint8Array) return value.length === 0;
  return false;
}

function scalarJson(field: protobuf.Field, value: unknown): string {
  if (field.resolvedType instanceof protobuf.Type) return marshalGoJson(field.resolvedType, value as object);
  if (typeof value === 'bigint' || typeof value === 'number') return value.toString();
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'string') return goJsonString(value);
  if (value instanceof Uint8Array) return `"${Buffer.from(value).toString('base64')}"`;
  // protobufjs Long (a field the codec did not convert).
  return String(value);
}

function fieldJson(field: protobuf.Field, value: unknown): string {
  if (field.repeated) return `[${(value as unknown[]).map((v) => scalarJson(field, v)).join(',')}]`;
  return scalarJson(field, value);
}

/** Marshals a decoded message (codec.ts shape) of `type` as etcdctl's `-w json` does. */
export function marshalGoJson(type: protobuf.Type, message: object): string {
  const obj = message as Record<string, unknown>;
  const parts: string[] = [];
  const doneOneofs = new Set<protobuf.OneOf>();
  for (const field of type.fieldsArray) {
    field.resolve();
    const oneof = field.partOf;
    if (oneof) {
      if (doneOneofs.has(oneof)) continue;
      doneOneofs.add(oneof);
      // The oneof sits where its first member is declared; Go prints a nil interface as null.
      const member = oneof.fieldsArray.find((f) => obj[f.name] !== undefined && obj[f.name] !== null);
      if (!member) continue; // omitempty drops the nil interface
      member.resolve();
      parts.push(`"${goCamelCase(oneof.name)}":{"${goCamelCase(member.name)}":${fieldJson(member, obj[member.name])}}`);
      continue;
    }
    const value = obj[field.name];
    if (isZero(field, value)) continue;
    parts.push(`${goJsonString(field.name)}:${fieldJson(field, value)}`);
  }
  return `{${parts.join(',')}}`;
}
