/**
 * Typed errors for expected failures, and the one table that maps each to etcd's gRPC status code,
 * etcd's exact message (clients such as the etcd3 npm client match on these strings) and the HTTP
 * status the JSON gateway answers with (grpc-gateway v1's mapping, as etcd 3.4 uses).
 */

/** gRPC status codes (grpc/codes). */
export const GrpcCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;
export type GrpcCode = (typeof GrpcCode)[keyof typeof GrpcCode];

/** HTTP status per gRPC code, as grpc-gateway v1 (etcd 3.4's gateway) translates it. */
export function httpStatusOf(code: GrpcCode): number {
  switch (code) {
    case GrpcCode.OK: return 200;
    case GrpcCode.CANCELLED: return 408;
    case GrpcCode.INVALID_ARGUMENT: return 400;
    case GrpcCode.DEADLINE_EXCEEDED: return 504;
    case GrpcCode.NOT_FOUND: return 404;
    case GrpcCode.ALREADY_EXISTS: return 409;
    case GrpcCode.PERMISSION_DENIED: return 403;
    case GrpcCode.UNAUTHENTICATED: return 401;
    case GrpcCode.RESOURCE_EXHAUSTED: return 429;
    // grpc-gateway v1 as etcd 3.4.23 ships it (checked side by side: 'lease already exists' is 412).
    case GrpcCode.FAILED_PRECONDITION: return 412;
    case GrpcCode.ABORTED: return 409;
    case GrpcCode.OUT_OF_RANGE: return 400;
    case GrpcCode.UNIMPLEMENTED: return 501;
    case GrpcCode.UNAVAILABLE: return 503;
    default: return 500;
  }
}

/** Every expected failure keyraft reports, with etcd's gRPC code and exact message. */
export const ErrorTable = {
  EmptyKey: { grpc: GrpcCode.INVALID_ARGUMENT, message: 'etcdserver: key is not provided' },
  KeyNotFound: { grpc: GrpcCode.INVALID_ARGUMENT, message: 'etcdserver: key not found' },
  ValueProvided: { grpc: GrpcCode.INVALID_ARGUMENT, message: 'etcdserver: value is provided' },
  LeaseProvided: { grpc: GrpcCode.INVALID_ARGUMENT, message: 'etcdserver: lease is provided' },
  TooManyOps: { grpc: GrpcCode.INVALID_ARGUMENT, message: 'etcdserver: too many operations in txn request' },
  DuplicateKey: { grpc: GrpcCode.INVALID_ARGUMENT, message: 'etcdserver: duplicate key given in txn request' },
  InvalidSortOption: { grpc: GrpcCode.INVALID_ARGUMENT, message: 'etcdserver: invalid sort option' },
  Compacted: { grpc: GrpcCode.OUT_OF_RANGE, message: 'etcdserver: mvcc: required revision has been compacted' },
  FutureRevision: { grpc: GrpcCode.OUT_OF_RANGE, message: 'etcdserver: mvcc: required revision is a future revision' },
  NoSpace: { grpc: GrpcCode.RESOURCE_EXHAUSTED, message: 'etcdserver: mvcc: database space exceeded' },
  LeaseNotFound: { grpc: GrpcCode.NOT_FOUND, message: 'etcdserver: requested lease not found' },
  LeaseExist: { grpc: GrpcCode.FAILED_PRECONDITION, message: 'etcdserver: lease already exists' },
  LeaseTTLTooLarge: { grpc: GrpcCode.OUT_OF_RANGE, message: 'etcdserver: too large lease TTL' },
  MemberNotFound: { grpc: GrpcCode.NOT_FOUND, message: 'etcdserver: member not found' },
  RequestTooLarge: { grpc: GrpcCode.INVALID_ARGUMENT, message: 'etcdserver: request is too large' },
  TooManyRequests: { grpc: GrpcCode.RESOURCE_EXHAUSTED, message: 'etcdserver: too many requests' },
  PermissionDenied: { grpc: GrpcCode.PERMISSION_DENIED, message: 'etcdserver: permission denied' },
  InvalidAuthToken: { grpc: GrpcCode.UNAUTHENTICATED, message: 'etcdserver: invalid auth token' },
  AuthNotEnabled: { grpc: GrpcCode.FAILED_PRECONDITION, message: 'etcdserver: authentication is not enabled' },
  NoLeader: { grpc: GrpcCode.UNAVAILABLE, message: 'etcdserver: no leader' },
  NotLeader: { grpc: GrpcCode.FAILED_PRECONDITION, message: 'etcdserver: not leader' },
  LeaderChanged: { grpc: GrpcCode.UNAVAILABLE, message: 'etcdserver: leader changed' },
  Stopped: { grpc: GrpcCode.UNAVAILABLE, message: 'etcdserver: server stopped' },
  Timeout: { grpc: GrpcCode.UNAVAILABLE, message: 'etcdserver: request timed out' },
  Corrupt: { grpc: GrpcCode.DATA_LOSS, message: 'etcdserver: corrupt cluster' },
  // etcd 3.4 answers a second membership change while one is uncommitted with this (rpctypes).
  ConfChangePending: { grpc: GrpcCode.FAILED_PRECONDITION, message: 'etcdserver: unhealthy cluster' },
  ConfChangeInvalid: { grpc: GrpcCode.FAILED_PRECONDITION, message: 'etcdserver: re-configuration failed due to not enough started members' },
  MemberExist: { grpc: GrpcCode.FAILED_PRECONDITION, message: 'etcdserver: member ID already exist' },
  PeerURLExist: { grpc: GrpcCode.FAILED_PRECONDITION, message: 'etcdserver: Peer URLs already exists' },
  // etcd 3.4's learner serves only serializable reads, Status and the member list (v3rpc interceptor).
  NotSupportedForLearner: { grpc: GrpcCode.UNAVAILABLE, message: 'etcdserver: rpc not supported for learner' },
  MemberNotLearner: { grpc: GrpcCode.FAILED_PRECONDITION, message: 'etcdserver: can only promote a learner member' },
  LearnerNotReady: { grpc: GrpcCode.FAILED_PRECONDITION, message: 'etcdserver: can only promote a learner member which is in sync with leader' },
  TooManyLearners: { grpc: GrpcCode.FAILED_PRECONDITION, message: 'etcdserver: too many learner members in cluster' },
  LeaderTransferTimeout: { grpc: GrpcCode.DEADLINE_EXCEEDED, message: 'etcdserver: request timed out, leader transfer took too long' },
  BadLeaderTransferee: { grpc: GrpcCode.FAILED_PRECONDITION, message: 'etcdserver: bad leader transferee' },
  // The caller's call ended (client gone, deadline) while a blocking request (Lock) waited: grpc-go's context text.
  Canceled: { grpc: GrpcCode.CANCELLED, message: 'context canceled' },
  // Not etcd-specific: malformed input that etcd's gRPC layer or gateway refuses before etcd sees it.
  InvalidArgument: { grpc: GrpcCode.INVALID_ARGUMENT, message: 'invalid argument' },
  // etcd's v3lock runs clientv3 inside the server: a KV error reaches the caller as a plain error,
  // code Unknown with etcd's text ("etcdserver: requested lease not found", HTTP 500 on the gateway).
  Unknown: { grpc: GrpcCode.UNKNOWN, message: 'unknown' },
  // etcd's v3election: clientv3 concurrency.Election's errors and the service's own check, all
  // plain Go errors, so code Unknown (HTTP 500 on the gateway) with these texts.
  ElectionNotLeader: { grpc: GrpcCode.UNKNOWN, message: 'election: not leader' },
  ElectionNoLeader: { grpc: GrpcCode.UNKNOWN, message: 'election: no leader' },
  ElectionMissingLeaderKey: { grpc: GrpcCode.UNKNOWN, message: '"leader" field must be provided' },
  Unimplemented: { grpc: GrpcCode.UNIMPLEMENTED, message: 'unknown service' },
  NotFoundPath: { grpc: GrpcCode.NOT_FOUND, message: 'Not Found' },
  Internal: { grpc: GrpcCode.INTERNAL, message: 'internal error' },
} as const satisfies Record<string, { grpc: GrpcCode; message: string }>;

export type ErrorCode = keyof typeof ErrorTable;

/**
 * An expected failure with a stable code. `detail` replaces the table's message only for the
 * generic codes (InvalidArgument, Unimplemented, Internal) where etcd's text names the input.
 */
export class KeyraftError extends Error {
  override name = 'KeyraftError';
  readonly code: ErrorCode;
  readonly grpcCode: GrpcCode;

  constructor(code: ErrorCode, detail?: string) {
    super(detail ?? ErrorTable[code].message);
    this.code = code;
    this.grpcCode = ErrorTable[code].grpc;
  }

  get httpStatus(): number {
    return httpStatusOf(this.grpcCode);
  }
}

export function isKeyraftError(err: unknown): err is KeyraftError {
  return err instanceof KeyraftError;
}
