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
import type { DeleteRangeResponse, KeyValue, MemberListResponse, PutResponse, RangeResponse, ResponseHeader, StatusResponse, TxnResponse } from '../proto/etcd-types.js';
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
};

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
