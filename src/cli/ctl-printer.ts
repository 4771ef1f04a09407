/**
 * Renders command results in etcdctl 3.4's output formats (--write-out):
 *
 * - simple: human text. A key-value is two lines, key then value, written as raw bytes (or
 *   `\x66\x6f\x6f` with --hex). put prints "OK", del the count, txn SUCCESS/FAILURE then a blank
 *   line and each op's simple output. List-like results are rows joined by ", ".
 * - json: the response message as Go's encoding/json writes it (ctl-json.ts).
 * - fields: one `"Name" : value` line per field (Go %q for strings), for scripts.
 * - table: only for member list and endpoint status/health (ctl-table.ts); others fail with
 *   "table not supported as output format" (exit 4), as etcdctl does.
 * - protobuf: the response's wire bytes, for the KV calls and member list.
 */
import type { AlarmResponse, HashKVResponse, MoveLeaderResponse } from '../proto/etcd-types.js';
import type {
  DeleteRangeResponse, KeyValue, LeaseGrantResponse, LeaseKeepAliveResponse, LeaseLeasesResponse, LeaseRevokeResponse,
  LeaseTimeToLiveResponse, MemberListResponse, PutResponse, RangeResponse, ResponseHeader, StatusResponse, TxnResponse,
} from '../proto/etcd-types.js';
import { encode, messageType } from '../proto/codec.js';
import { CtlError, ExitCode } from './ctl-exit.js';
import { goQuote, humanizeBytes } from './ctl-go-text.js';
import { goJsonString, marshalGoJson } from './ctl-json.js';
import { renderTable } from './ctl-table.js';

export const OUTPUT_FORMATS = ['simple', 'json', 'table', 'fields', 'protobuf'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export function isOutputFormat(text: string): text is OutputFormat {
  return (OUTPUT_FORMATS as readonly string[]).includes(text);
}

/** Where a command's output goes; the entry point writes it out when the command ends. */
export interface Output {
  stdout(chunk: string | Buffer): void;
  stderr(chunk: string | Buffer): void;
  /** Resolves once what was written reached the file descriptors (live output only: watch runs commands between prints). */
  flush?(): Promise<void>;
}

/** One `endpoint status` result (etcdctl's epStatus). */
export interface EndpointStatusResult {
  endpoint: string;
  status: StatusResponse;
}

/** One `endpoint health` result (etcdctl's epHealth); `took` is a Go duration string. */
export interface EndpointHealthResult {
  endpoint: string;
  health: boolean;
  took: string;
  error: string;
}

const types = {
  range: messageType('etcdserverpb.RangeResponse'),
  put: messageType('etcdserverpb.PutResponse'),
  del: messageType('etcdserverpb.DeleteRangeResponse'),
  txn: messageType('etcdserverpb.TxnResponse'),
  memberList: messageType('etcdserverpb.MemberListResponse'),
  status: messageType('etcdserverpb.StatusResponse'),
  alarm: messageType('etcdserverpb.AlarmResponse'),
  hashKV: messageType('etcdserverpb.HashKVResponse'),
  moveLeader: messageType('etcdserverpb.MoveLeaderResponse'),
};

/** One `endpoint hashkv` result (etcdctl's epHashKV). */
export interface EndpointHashKVResult {
  endpoint: string;
  hashKV: HashKVResponse;
}

const ALARM_NAMES = ['NONE', 'NOSPACE', 'CORRUPT'];

/** etcd's AlarmMember.String() (gogoproto compact text), which etcdctl prints with %+v. */
function alarmMemberText(m: { memberID?: bigint; alarm?: number }): string {
  const fields: string[] = [];
  if ((m.memberID ?? 0n) !== 0n) fields.push(`memberID:${BigInt.asUintN(64, m.memberID!)}`);
  if ((m.alarm ?? 0) !== 0) fields.push(`alarm:${ALARM_NAMES[m.alarm!] ?? m.alarm}`);
  return fields.map((f) => `${f} `).join('');
}

/** "\x66\x6f\x6f": etcdctl's --hex form of a byte string. */
function hexBytes(bytes: Buffer): string {
  let out = '';
  for (const b of bytes) out += `\\x${b.toString(16).padStart(2, '0')}`;
  return out;
}

export class Printer {
  constructor(
    readonly format: OutputFormat,
    private readonly out: Output,
    private readonly hex = false,
  ) {}

  put(resp: PutResponse): void {
    switch (this.format) {
      case 'simple':
        this.out.stdout('OK\n');
        if (resp.prev_kv) this.simpleKv(resp.prev_kv, false);
        return;
      case 'fields':
        this.fieldsHeader(resp.header);
        if (resp.prev_kv) this.fieldsKv('Prev', resp.prev_kv);
        return;
      default:
        this.structured(types.put, resp);
    }
  }

  get(resp: RangeResponse, valueOnly = false): void {
    switch (this.format) {
      case 'simple':
        for (const kv of resp.kvs ?? []) this.simpleKv(kv, valueOnly);
        return;
      case 'fields':
        this.fieldsHeader(resp.header);
        for (const kv of resp.kvs ?? []) this.fieldsKv('', kv);
        this.out.stdout(`"More" : ${resp.more ? 'true' : 'false'}\n"Count" : ${resp.count ?? 0}\n`);
        return;
      default:
        this.structured(types.range, resp);
    }
  }

  del(resp: DeleteRangeResponse): void {
    switch (this.format) {
      case 'simple':
        this.out.stdout(`${resp.deleted ?? 0}\n`);
        for (const kv of resp.prev_kvs ?? []) this.simpleKv(kv, false);
        return;
      case 'fields':
        this.fieldsHeader(resp.header);
        this.out.stdout(`"Deleted" : ${resp.deleted ?? 0}\n`);
        for (const kv of resp.prev_kvs ?? []) this.fieldsKv('Prev', kv);
        return;
      default:
        this.structured(types.del, resp);
    }
  }

  txn(resp: TxnResponse): void {
    if (this.format === 'simple' || this.format === 'fields') {
      if (this.format === 'simple') this.out.stdout(resp.succeeded ? 'SUCCESS\n' : 'FAILURE\n');
      else {
        this.fieldsHeader(resp.header);
        this.out.stdout(`"Succeeded" : ${resp.succeeded ? 'true' : 'false'}\n`);
      }
      for (const op of resp.responses ?? []) {
        if (this.format === 'simple') this.out.stdout('\n');
        if (op.response_range) this.get(op.response_range);
        else if (op.response_put) this.put(op.response_put);
        else if (op.response_delete_range) this.del(op.response_delete_range);
        else throw new CtlError(ExitCode.Error, 'unexpected txn response (nested txn)');
      }
      return;
    }
    this.structured(types.txn, resp);
  }

  memberList(resp: MemberListResponse): void {
    const header = ['ID', 'Status', 'Name', 'Peer Addrs', 'Client Addrs', 'Is Learner'];
    const rows = (resp.members ?? []).map((m) => [
      (m.ID ?? 0n).toString(16),
      m.name ? 'started' : 'unstarted',
      m.name ?? '',
      (m.peerURLs ?? []).join(','),
      (m.clientURLs ?? []).join(','),
      m.isLearner ? 'true' : 'false',
    ]);
    switch (this.format) {
      case 'simple':
        for (const row of rows) this.out.stdout(`${row.join(', ')}\n`);
        return;
      case 'table':
        this.out.stdout(renderTable(header, rows));
        return;
      case 'fields':
        this.fieldsHeader(resp.header);
        for (const m of resp.members ?? []) {
          let text = `"ID" : ${m.ID ?? 0n}\n"Name" : ${goQuote(m.name ?? '')}\n`;
          for (const u of m.peerURLs ?? []) text += `"PeerURL" : ${goQuote(u)}\n`;
          for (const u of m.clientURLs ?? []) text += `"ClientURL" : ${goQuote(u)}\n`;
          text += `"IsLearner" : ${m.isLearner ? 'true' : 'false'}\n\n`;
          this.out.stdout(text);
        }
        return;
      default:
        this.structured(types.memberList, resp);
    }
  }

  endpointStatus(results: readonly EndpointStatusResult[]): void {
    const header = ['endpoint', 'ID', 'version', 'db size', 'is leader', 'is learner', 'raft term', 'raft index', 'raft applied index', 'errors'];
    const rows = results.map(({ endpoint, status: s }) => [
      endpoint,
      (s.header?.member_id ?? 0n).toString(16),
      s.version ?? '',
      humanizeBytes(s.dbSize ?? 0),
      String((s.leader ?? 0n) === (s.header?.member_id ?? 0n)),
      String(s.isLearner ?? false),
      String(s.raftTerm ?? 0),
      String(s.raftIndex ?? 0),
      String(s.raftAppliedIndex ?? 0),
      (s.errors ?? []).join(', '),
    ]);
    switch (this.format) {
      case 'simple':
        for (const row of rows) this.out.stdout(`${row.join(', ')}\n`);
        return;
      case 'table':
        this.out.stdout(renderTable(header, rows));
        return;
      case 'json':
        this.out.stdout(`[${results.map((r) => `{"Endpoint":${goJsonString(r.endpoint)},"Status":${marshalGoJson(types.status, r.status)}}`).join(',')}]\n`);
        return;
      case 'fields':
        for (const { endpoint, status: s } of results) {
          this.fieldsHeader(s.header);
          this.out.stdout(
            `"Version" : ${goQuote(s.version ?? '')}\n"DBSize" : ${s.dbSize ?? 0}\n"Leader" : ${s.leader ?? 0n}\n` +
            `"IsLearner" : ${s.isLearner ? 'true' : 'false'}\n"RaftIndex" : ${s.raftIndex ?? 0}\n"RaftTerm" : ${s.raftTerm ?? 0}\n` +
            `"RaftAppliedIndex" : ${s.raftAppliedIndex ?? 0}\n"Errors" : [${(s.errors ?? []).join(' ')}]\n"Endpoint" : ${goQuote(endpoint)}\n\n`,
          );
        }
        return;
      default:
        throw new CtlError(ExitCode.BadFeature, `${this.format} not supported as output format`);
    }
  }

  /** `snapshot status` (etcdctl's printer.DBStatus). */
  snapshotStatus(s: { hash: number; revision: number; totalKey: number; totalSize: number }): void {
    const row = [s.hash.toString(16), String(s.revision), String(s.totalKey), humanizeBytes(s.totalSize)];
    switch (this.format) {
      case 'simple':
        this.out.stdout(`${row.join(', ')}\n`);
        return;
      case 'table':
        this.out.stdout(renderTable(['hash', 'revision', 'total keys', 'total size'], [row]));
        return;
      case 'json':
        this.out.stdout(`{"hash":${s.hash},"revision":${s.revision},"totalKey":${s.totalKey},"totalSize":${s.totalSize}}\n`);
        return;
      case 'fields':
        this.out.stdout(`"Hash" : ${s.hash}\n"Revision" : ${s.revision}\n"Keys" : ${s.totalKey}\n"Size" : ${s.totalSize}\n`);
        return;
      default:
        throw new CtlError(ExitCode.BadFeature, `${this.format} not supported as output format`);
    }
  }

  endpointHealth(results: readonly EndpointHealthResult[]): void {
    switch (this.format) {
      case 'simple':
        // etcdctl writes health lines to stderr.
        for (const h of results) {
          this.out.stderr(h.error === ''
            ? `${h.endpoint} is healthy: successfully committed proposal: took = ${h.took}\n`
            : `${h.endpoint} is unhealthy: failed to commit proposal: ${h.error}\n`);
        }
        return;
      case 'table':
        this.out.stdout(renderTable(['endpoint', 'health', 'took', 'error'], results.map((h) => [h.endpoint, String(h.health), h.took, h.error])));
        return;
      case 'json':
        this.out.stdout(`[${results.map((h) =>
          `{"endpoint":${goJsonString(h.endpoint)},"health":${h.health},"took":${goJsonString(h.took)}${h.error ? `,"error":${goJsonString(h.error)}` : ''}}`,
        ).join(',')}]\n`);
        return;
      case 'fields':
        for (const h of results) {
          this.out.stdout(`"Endpoint" : ${goQuote(h.endpoint)}\n"Health" : ${h.health}\n"Took" : ${h.took}\n"Error" : ${h.error}\n\n`);
        }
        return;
      default:
        throw new CtlError(ExitCode.BadFeature, `${this.format} not supported as output format`);
    }
  }

  endpointHashKV(results: readonly EndpointHashKVResult[]): void {
    switch (this.format) {
      case 'simple':
        for (const r of results) this.out.stdout(`${r.endpoint}, ${r.hashKV.hash ?? 0}\n`);
        return;
      case 'table':
        this.out.stdout(renderTable(['endpoint', 'hash'], results.map((r) => [r.endpoint, String(r.hashKV.hash ?? 0)])));
        return;
      case 'json':
        this.out.stdout(`[${results.map((r) => `{"Endpoint":${goJsonString(r.endpoint)},"HashKV":${marshalGoJson(types.hashKV, r.hashKV)}}`).join(',')}]\n`);
        return;
      case 'fields':
        for (const r of results) {
          this.fieldsHeader(r.hashKV.header);
          this.out.stdout(`"Endpoint" : ${goQuote(r.endpoint)}\n"Hash" : ${r.hashKV.hash ?? 0}\n\n`);
        }
        return;
      default:
        throw new CtlError(ExitCode.BadFeature, `${this.format} not supported as output format`);
    }
  }

  /** alarm list / disarm (etcdctl 3.4 has no alarm table: "table not supported as output format"). */
  alarm(resp: AlarmResponse): void {
    switch (this.format) {
      case 'simple':
        for (const a of resp.alarms ?? []) this.out.stdout(`${alarmMemberText(a)}\n`);
        return;
      case 'fields':
        // etcd's Alarm answer has no header, and etcdctl's fields printer prints none for it.
        if (resp.header) this.fieldsHeader(resp.header);
        for (const a of resp.alarms ?? []) this.out.stdout(`"MemberID" : ${BigInt.asUintN(64, a.memberID ?? 0n)}\n"AlarmType" : ${ALARM_NAMES[a.alarm ?? 0] ?? a.alarm}\n`);
        return;
      case 'table':
        throw new CtlError(ExitCode.BadFeature, 'table not supported as output format');
      default:
        this.structured(types.alarm, resp);
    }
  }

  moveLeader(leader: bigint, target: bigint, resp: MoveLeaderResponse): void {
    switch (this.format) {
      case 'simple':
        this.out.stdout(`Leadership transferred from ${leader.toString(16)} to ${target.toString(16)}\n`);
        return;
      case 'fields':
      case 'table':
        // etcdctl 3.4's fields and table printers have no move-leader output.
        throw new CtlError(ExitCode.BadFeature, `${this.format} not supported as output format`);
      default:
        this.structured(types.moveLeader, resp);
    }
  }

  // ---- leases: etcdctl 3.4 prints clientv3's lease responses, whose JSON flattens the header
  // (encoding/json of an embedded *pb.ResponseHeader) and names some fields its own way
  // ("id", "ttl", "granted-ttl" for time-to-live). The protobuf format writes the header only.

  leaseGrant(resp: LeaseGrantResponse): void {
    const id = resp.ID ?? 0n;
    switch (this.format) {
      case 'simple': this.out.stdout(`lease ${leaseHex(id)} granted with TTL(${resp.TTL ?? 0}s)\n`); return;
      case 'json': this.out.stdout(`{${flatHeaderJson(resp.header)},"ID":${id},"TTL":${resp.TTL ?? 0},"Error":${goJsonString(resp.error ?? '')}}\n`); return;
      case 'fields': this.fieldsHeader(resp.header); this.out.stdout(`"ID" : ${id}\n"TTL" : ${resp.TTL ?? 0}\n`); return;
      default: this.leaseHeaderOnly(resp.header);
    }
  }

  leaseRevoke(id: bigint, resp: LeaseRevokeResponse): void {
    switch (this.format) {
      case 'simple': this.out.stdout(`lease ${leaseHex(id)} revoked\n`); return;
      case 'json': this.out.stdout(`{"header":{${flatHeaderJson(resp.header)}}}\n`); return;
      case 'fields': this.fieldsHeader(resp.header); return;
      case 'protobuf': throw new CtlError(ExitCode.BadFeature, `marshal unsupported for type clientv3.LeaseRevokeResponse`);
      default: throw new CtlError(ExitCode.BadFeature, `${this.format} not supported as output format`);
    }
  }

  leaseKeepAlive(resp: LeaseKeepAliveResponse): void {
    const id = resp.ID ?? 0n;
    switch (this.format) {
      case 'simple': this.out.stdout(`lease ${leaseHex(id)} keepalived with TTL(${resp.TTL ?? 0})\n`); return;
      case 'json': this.out.stdout(`{${flatHeaderJson(resp.header)},"ID":${id},"TTL":${resp.TTL ?? 0}}\n`); return;
      case 'fields': this.fieldsHeader(resp.header); this.out.stdout(`"ID" : ${id}\n"TTL" : ${resp.TTL ?? 0}\n`); return;
      default: this.leaseHeaderOnly(resp.header);
    }
  }

  leaseTimeToLive(resp: LeaseTimeToLiveResponse, keys: boolean): void {
    const id = resp.ID ?? 0n;
    const ttl = resp.TTL ?? 0;
    const granted = resp.grantedTTL ?? 0;
    const attached = resp.keys ?? [];
    switch (this.format) {
      case 'simple': {
        if (granted === 0 && ttl === -1) {
          this.out.stdout(`lease ${leaseHex(id)} already expired\n`);
          return;
        }
        let text = `lease ${leaseHex(id)} granted with TTL(${granted}s), remaining(${ttl}s)`;
        if (keys) text += `, attached keys([${attached.map((k) => k.toString('utf8')).join(' ')}])`;
        this.out.stdout(Buffer.from(`${text}\n`));
        return;
      }
      case 'json': {
        const keysJson = attached.length === 0 ? 'null' : `[${attached.map((k) => `"${k.toString('base64')}"`).join(',')}]`;
        this.out.stdout(`{${flatHeaderJson(resp.header)},"id":${id},"ttl":${ttl},"granted-ttl":${granted},"keys":${keysJson}}\n`);
        return;
      }
      case 'fields':
        this.fieldsHeader(resp.header);
        this.out.stdout(`"ID" : ${id}\n"TTL" : ${ttl}\n"GrantedTTL" : ${granted}\n`);
        for (const k of attached) this.out.stdout(`"Key" : ${goQuote(k)}\n`);
        return;
      default: this.leaseHeaderOnly(resp.header);
    }
  }

  leaseList(resp: LeaseLeasesResponse): void {
    const leases = resp.leases ?? [];
    switch (this.format) {
      case 'simple':
        this.out.stdout(`found ${leases.length} leases\n${leases.map((l) => `${leaseHex(l.ID ?? 0n)}\n`).join('')}`);
        return;
      case 'json':
        this.out.stdout(`{${flatHeaderJson(resp.header)},"leases":[${leases.map((l) => `{"id":${l.ID ?? 0n}}`).join(',')}]}\n`);
        return;
      case 'fields':
        this.fieldsHeader(resp.header);
        for (const l of leases) this.out.stdout(`"ID" : ${l.ID ?? 0n}\n`);
        return;
      default: this.leaseHeaderOnly(resp.header);
    }
  }

  private leaseHeaderOnly(header: ResponseHeader | undefined): void {
    if (this.format !== 'protobuf') throw new CtlError(ExitCode.BadFeature, `${this.format} not supported as output format`);
    this.out.stdout(Buffer.from(encode(messageType('etcdserverpb.ResponseHeader'), header ?? {})));
  }

  /** One key-value in the simple format (watch events): key line, value line. */
  keyValue(kv: KeyValue): void {
    this.simpleKv(kv, false);
  }

  private simpleKv(kv: KeyValue, valueOnly: boolean): void {
    const key = kv.key ?? Buffer.alloc(0);
    const value = kv.value ?? Buffer.alloc(0);
    if (this.hex) {
      if (!valueOnly) this.out.stdout(`${hexBytes(key)}\n`);
      this.out.stdout(`${hexBytes(value)}\n`);
      return;
    }
    if (!valueOnly) this.out.stdout(Buffer.concat([key, Buffer.from('\n')]));
    this.out.stdout(Buffer.concat([value, Buffer.from('\n')]));
  }

  private fieldsHeader(h: ResponseHeader | undefined): void {
    this.out.stdout(`"ClusterID" : ${h?.cluster_id ?? 0n}\n"MemberID" : ${h?.member_id ?? 0n}\n"Revision" : ${h?.revision ?? 0}\n"RaftTerm" : ${h?.raft_term ?? 0}\n`);
  }

  private fieldsKv(prefix: string, kv: KeyValue): void {
    this.out.stdout(
      `"${prefix}Key" : ${goQuote(kv.key ?? '')}\n"${prefix}CreateRevision" : ${kv.create_revision ?? 0}\n` +
      `"${prefix}ModRevision" : ${kv.mod_revision ?? 0}\n"${prefix}Version" : ${kv.version ?? 0}\n` +
      `"${prefix}Value" : ${goQuote(kv.value ?? '')}\n"${prefix}Lease" : ${kv.lease ?? 0n}\n`,
    );
  }

  private structured(type: ReturnType<typeof messageType>, resp: object): void {
    switch (this.format) {
      case 'json':
        this.out.stdout(`${marshalGoJson(type, resp)}\n`);
        return;
      case 'protobuf':
        this.out.stdout(Buffer.from(encode(type, resp)));
        return;
      default:
        throw new CtlError(ExitCode.BadFeature, `${this.format} not supported as output format`);
    }
  }
}

/** A lease id as etcdctl prints it: %016x of the int64. */
export function leaseHex(id: bigint): string {
  return BigInt.asUintN(64, id).toString(16).padStart(16, '0');
}

/** The header's fields as encoding/json writes an embedded *pb.ResponseHeader (omitempty). */
function flatHeaderJson(h: ResponseHeader | undefined): string {
  const parts: string[] = [];
  if (h?.cluster_id) parts.push(`"cluster_id":${BigInt.asUintN(64, h.cluster_id)}`);
  if (h?.member_id) parts.push(`"member_id":${BigInt.asUintN(64, h.member_id)}`);
  if (h?.revision) parts.push(`"revision":${h.revision}`);
  if (h?.raft_term) parts.push(`"raft_term":${h.raft_term}`);
  return parts.join(',');
}
