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
  /**
   * Deepest JSON nesting the gateway reads: Go's encoding/json maxNestingDepth, so a deeper body
   * gets the error etcd's gateway gives ("invalid character '[' exceeded max depth").
   */
  gatewayJsonDepthMax: 10_000,
  /**
   * Deepest txn nesting the API decodes. etcd needs no such bound: its op budget is per level
   * (a nested txn gets max-txn-ops minus its parent's ops), so nesting beyond max-txn-ops + 1 is
   * always "too many operations", and the gateway refuses it so while decoding (the decoder
   * recurses once per level). This caps that at 1,000 levels for a --max-txn-ops above 999, where
   * etcd would accept deeper txns: the call stack, not a policy.
   */
  txnDepthMax: 1000,
  /**
   * HTTP/1.1: a request head must be complete this long after we start waiting for it, or the
   * connection gets 408 and is closed (slowloris: 500 connections trickling heads all stayed
   * open). Node's headersTimeout is 60 s; a head is at most 16 KiB and real clients write it at
   * once, so 10 s is ample over any link that can carry a request at all. Configurable for tests.
   */
  httpHeadTimeoutMs: 10_000,
  /**
   * HTTP/1.1: while a request body arrives, at most this long between two reads, or 408 and close.
   * An idle bound, not a total, so a large body on a slow link still arrives; each stalled
   * connection still holds at most one body (gatewayBodyBytesMax). Configurable for tests.
   */
  httpBodyIdleTimeoutMs: 10_000,
  /** JSON gateway request body cap (before decoding). */
  gatewayBodyBytesMax: 1.5 * 1024 * 1024 + 512 * 1024,
  /** HTTP/2 (gRPC): streams one client connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). */
  http2StreamsPerConnectionMax: 4096,
  /**
   * HTTP/2: each stream's receive window (SETTINGS_INITIAL_WINDOW_SIZE): above the gRPC receive
   * limit, so a unary request never waits for a WINDOW_UPDATE.
   */
  http2StreamWindowBytes: 4 * 1024 * 1024,
  /**
   * HTTP/2: the connection's receive window, credited back only as calls finish: the most request
   * bytes one connection can have the server hold at once.
   */
  http2ConnectionWindowBytes: 64 * 1024 * 1024,
  /** HTTP/2: most bytes of one header block (HEADERS + CONTINUATION fragments, before HPACK). */
  http2HeaderBlockBytesMax: 256 * 1024,
  /** HTTP/2: most decoded header-list bytes (name + value + 32 per field; SETTINGS_MAX_HEADER_LIST_SIZE). */
  http2HeaderListBytesMax: 256 * 1024,
  /**
   * Raft: the byte budget of one MsgApp to a follower (at least one entry always goes). etcd's
   * --max-request-bytes + overhead is its per-message cap; 1 MiB keeps a lagging follower's
   * catch-up in bounded frames while a busy leader still packs hundreds of puts per message.
   */
  raftMessageBytesMax: 1024 * 1024,
} as const;
