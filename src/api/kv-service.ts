/**
 * The client requests keyraft serves, checked as etcd's v3rpc handlers check them and then handed
 * to the member. Both front ends (gRPC services and the JSON gateway) call this, so the checks and
 * their order live in one place: gRPC receive limit (the transport's), then the request's own
 * checks (key.go), then the proposal size for writes (etcd's server).
 */
import type {
  CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, MemberListResponse, PutRequest,
  PutResponse, RangeRequest, RangeResponse, StatusResponse, TxnRequest, TxnResponse,
} from '../proto/etcd-types.js';
import { Limits } from '../platform/limits.js';
import type { MemberApi } from '../server/raft-kv.js';
import {
  checkDeleteRequest, checkProposalSize, checkPutRequest, checkRangeRequest, checkTxnRequest,
} from './request-validation.js';
import { isTxnReadOnly } from '../server/txn-write-checks.js';

export class KvService {
  readonly member: MemberApi;

  constructor(member: MemberApi) {
    this.member = member;
  }

  /** The gRPC receive limit: etcd sets it to max-request-bytes plus 512 KiB of framing room. */
  get grpcMaxReceiveBytes(): number {
    return this.member.limits.maxRequestBytes + Limits.grpcOverheadBytes;
  }

  range(request: RangeRequest): Promise<RangeResponse> {
    checkRangeRequest(request);
    return this.member.range(request);
  }

  /** `requestBytes`: the encoded PutRequest's size (measured on gRPC, computed for the gateway). */
  put(request: PutRequest, requestBytes: number): Promise<PutResponse> {
    checkPutRequest(request);
    checkProposalSize(requestBytes, this.member.limits.maxRequestBytes);
    return this.member.put(request);
  }

  deleteRange(request: DeleteRangeRequest, requestBytes: number): Promise<DeleteRangeResponse> {
    checkDeleteRequest(request);
    checkProposalSize(requestBytes, this.member.limits.maxRequestBytes);
    return this.member.deleteRange(request);
  }

  txn(request: TxnRequest, requestBytes: number): Promise<TxnResponse> {
    checkTxnRequest(request, this.member.limits.maxTxnOps);
    // A read-only txn is served locally in etcd, never proposed, so it has no proposal size.
    if (!isTxnReadOnly(request)) checkProposalSize(requestBytes, this.member.limits.maxRequestBytes);
    return this.member.txn(request);
  }

  compact(request: CompactionRequest, requestBytes: number): Promise<CompactionResponse> {
    checkProposalSize(requestBytes, this.member.limits.maxRequestBytes);
    return this.member.compact(request);
  }

  memberList(): Promise<MemberListResponse> {
    return this.member.memberList();
  }

  status(): Promise<StatusResponse> {
    return this.member.status();
  }
}
