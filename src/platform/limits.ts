/**
 * Every bound keyraft enforces, in one place. Defaults follow etcd where etcd has one; flags may
 * override the ones marked configurable (server/config.ts).
 */
export const Limits = {
  /** --max-request-bytes default: etcd's 1.5 MiB. Configurable. */
  maxRequestBytes: 1.5 * 1024 * 1024,
  /** gRPC receive limit: etcd allows max-request-bytes plus this much framing overhead. */
  grpcOverheadBytes: 512 * 1024,
  /** --max-txn-ops default. Configurable. */
  maxTxnOps: 128,
  /** --quota-backend-bytes default: etcd's 2 GiB. Configurable. */
  quotaBackendBytes: 2 * 1024 * 1024 * 1024,
  /** Proposals waiting for apply before new ones are refused with TooManyRequests. */
  pendingProposalsMax: 100_000,
  /** WAL segment size; segments are preallocated to this size. */
  walSegmentSizeBytes: 64 * 1024 * 1024,
  /** Upper bound on entries handed to the WAL writer in one batch. */
  walBatchEntriesMax: 16_384,
  /** Upper bound on one WAL record's payload: a record larger than this is corruption. */
  walRecordBytesMax: 64 * 1024 * 1024,
  /** JSON gateway request body cap (before decoding). */
  gatewayBodyBytesMax: 1.5 * 1024 * 1024 + 512 * 1024,
} as const;
