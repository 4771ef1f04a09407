/**
 * Every bound keyraft enforces, in one place. Defaults follow etcd where etcd has one; flags may
 * override the ones marked configurable (server/config.ts).
 */
export const Limits = {
  /** --max-request-bytes default: etcd's 1.5 MiB. Configurable. */
  maxRequestBytes: 1.5 * 1024 * 1024,
  /** gRPC receive limit: etcd allows max-request-bytes plus this much framing overhead. */
  grpcOverheadBytes: 512 * 1024,
  /**
   * TTL of the lease the Election service grants for a Campaign that names none (lease 0): etcd's
   * v3election opens a clientv3 concurrency.Session, whose default TTL is 60 s, and orphans it, so
   * nothing keeps that lease alive and the leadership ends with it.
   */
  electionSessionTtlSeconds: 60,
  /** --max-txn-ops default. Configurable. */
  maxTxnOps: 128,
  /** --quota-backend-bytes default: etcd's 2 GiB. Configurable. */
  quotaBackendBytes: 2 * 1024 * 1024 * 1024,
  /** Proposals waiting for apply before new ones are refused with TooManyRequests. */
  pendingProposalsMax: 100_000,
  /**
   * Bytes of entry data applied between two Raft log compactions (keyraft's own, beside etcd's
   * --snapshot-count in entries): with large entries (txns of 128 puts are ~40 KB each) the count
   * alone let the in-memory log and the WAL that start-up reads grow to hundreds of MB (1M keys
   * loaded in such txns: 7,800 entries, 320 MB, all read again at every start).
   */
  raftLogBytesBetweenCompactionsMax: 32 * 1024 * 1024,
  /**
   * The in-memory Raft log is trimmed apart from the WAL release (server/member.ts trimLog): every
   * this many applied entries, or this many bytes of applied entry data, whichever comes first.
   * The WAL release lags a whole --snapshot-count round behind the backend flush for durability,
   * so trimming only with it kept up to 2 x 100,000 entries in memory (RSS after 500,000 puts of
   * 256 B to one key: 375 MiB vs etcd's 161 MiB).
   */
  raftLogTrimIntervalEntries: 1000,
  raftLogTrimIntervalBytes: 4 * 1024 * 1024,
  /**
   * Applied entries the in-memory log keeps for followers a little behind (etcd's
   * SnapshotCatchUpEntries); a follower further behind gets a state image, as with etcd.
   */
  raftLogCatchUpEntries: 5000,
  /** ...and at most this many bytes of them, so large entries (txns) do not keep 5,000 x 40 KB. */
  raftLogCatchUpBytesMax: 16 * 1024 * 1024,
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
  /**
   * HTTP/1.1: how long an idle keep-alive connection stays open between requests (fast path and
   * node:http alike; autocannon and curl reuse them): it frees the sockets of clients that went
   * away without closing.
   */
  httpKeepAliveTimeoutMs: 60_000,
  /**
   * Any client connection: one that has sent nothing this long after accept is closed before it
   * is told apart (HTTP/2 or HTTP/1.1); afterwards the protocol's own deadlines apply
   * (http2PrefaceTimeoutMs, httpHeadTimeoutMs, then httpKeepAliveTimeoutMs or HTTP/2 keepalive).
   */
  clientFirstBytesTimeoutMs: 30_000,
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
  /**
   * HTTP/2: most CONTINUATION frames after one HEADERS (CVE-2024-27316 class: empty CONTINUATIONs
   * add no bytes, yet each costs a frame). 16 KB frames fill the 256 KiB block in 16; nghttp2 allows 8.
   */
  http2ContinuationFramesMax: 32,
  /**
   * HTTP/2: request bytes (DATA received, not yet released by a finished call) held across all
   * connections of the member. Each connection may hold its window (64 MiB); past this total a
   * stream that sends more is refused (RST_STREAM REFUSED_STREAM) and its bytes are dropped.
   */
  http2RequestBytesBufferedMax: 256 * 1024 * 1024,
  /**
   * HTTP/2 rapid reset (CVE-2023-44487): a client may reset this many of its in-progress streams
   * at once, then this many per second (a token bucket; nghttp2's defaults); past it, GOAWAY
   * ENHANCE_YOUR_CALM.
   */
  http2ClientResetsBurst: 1000,
  http2ClientResetsPerSecond: 33,
  /**
   * HTTP/2: a connection's output of one event-loop turn goes to its socket in writes of at most
   * this (http2-connection.ts chunk): under watch fan-out a turn can frame megabytes; written as
   * they fill, the client reads the first while the rest is encoded, and no turn builds one copy
   * of all of it.
   */
  http2OutputChunkBytes: 64 * 1024,
  /** HTTP/2: reply bytes handed to one socket and not yet written; more waits for 'drain'. */
  http2SocketBytesInFlightMax: 1024 * 1024,
  /**
   * HTTP/2: how long a PING ACK may wait for a reply to ride with while a stream is open
   * (http/held-output.ts): grpc-go clients send a PING with each request, and an ACK of its own
   * cost a socket write per call. Keepalive timeouts are seconds; nothing else waits on an ACK.
   */
  http2PingAckHoldMs: 500,
  /** HTTP/2: a connection must complete its preface and first SETTINGS within this. */
  http2PrefaceTimeoutMs: 20_000,
  /** HTTP/2: a frame (or a header block) whose first byte arrived must be whole within this (slow trickle). */
  http2FrameTimeoutMs: 20_000,
  /**
   * A client connection whose queued output (reply bytes we hold for it: in the socket, or waiting
   * for its HTTP/2 windows) has not moved at all for this long is closed and its memory released:
   * a client that stops reading, or never opens its windows, must not hold replies (a 10 MB range,
   * a watch's events) forever. Not a total: a slow reader that takes a byte now and then stays.
   * etcd (grpc-go, net/http) has no such bound. Shorter in tests.
   */
  clientWriteStallMs: 30_000,
  /**
   * Client connections open at once on one client port (HTTP/2 and HTTP/1.1, classified or not).
   * Past it a new connection is closed at accept, counted
   * (keyraft_client_connections_closed_total{reason="connection_limit"}) and logged, rate-limited.
   * etcd has no cap (its listener accepts until the process runs out of fds); each idle connection
   * costs us a socket, its buffers and a few objects, and 100,000 of them exhaust fds or memory.
   * Configurable (--max-client-connections).
   */
  clientConnectionsMax: 20_000,
  /** etcd --grpc-keepalive-min-time (configurable): clients pinging more often get GOAWAY ENHANCE_YOUR_CALM "too_many_pings". */
  grpcKeepaliveMinTimeMs: 5_000,
  /** etcd --grpc-keepalive-interval (configurable): after this long with nothing from the client, the server pings. */
  grpcKeepaliveIntervalMs: 2 * 60 * 60 * 1000,
  /** etcd --grpc-keepalive-timeout (configurable): a server ping unanswered this long closes the connection. */
  grpcKeepaliveTimeoutMs: 20_000,
  /**
   * Main-thread work per turn of the event loop (grpc/work-scheduler.ts): past this, queued calls and
   * replies wait for the next turn, after I/O. One task may overrun it; the budget bounds what follows.
   */
  workSliceMs: 2,
  /** gRPC: handlers running at once per connection (rapid reset: a reset frees the stream, not the handler). */
  grpcHandlersPerConnectionMax: 256,
  /** gRPC: encoded reply bytes queued on one connection (not yet taken by its socket) before new work there waits. */
  grpcReplyBytesQueuedPerConnectionMax: 8 * 1024 * 1024,
  /** gRPC: the same across the member. */
  grpcReplyBytesQueuedMax: 256 * 1024 * 1024,
  /** Watch: watchers one watch stream may hold; a create past it is refused (canceled, with a reason). */
  watchersPerStreamMax: 100_000,
  /**
   * Watch: Watch calls one client connection may have open at once (etcd has no such bound; its
   * clients multiplex watchers onto one stream per context). One past it ends at once with
   * RESOURCE_EXHAUSTED naming this limit. Below http2StreamsPerConnectionMax, so that a
   * connection full of watch streams still has room for its other calls.
   */
  watchStreamsPerConnectionMax: 1024,
  /**
   * Watch: bytes a stream may hand its sink beyond the sink's high-water mark before the client
   * reads again. Events stop at the mark (watchers fall back to history); what still goes out
   * then is control responses (created, canceled, progress) answering the client's own requests,
   * so a client that writes requests and never reads is cut off here instead of growing memory.
   */
  watchStreamControlBytesBlockedMax: 1024 * 1024,
  /** Watch: revisions one catch-up read from history covers (etcd's watchBatchMaxRevs). */
  watchCatchUpRevisionsMax: 1000,
  /** Watch: events one catch-up response carries at most (cut at a revision boundary; one revision always whole). */
  watchCatchUpEventsMax: 10_000,
  /**
   * Watch: encoded event bytes one catch-up response carries at most (cut at a revision boundary,
   * one revision always whole): small enough that a stream's output stays near its high-water
   * mark and a catching-up stream interleaves with live ones.
   */
  watchCatchUpBytesMax: 1024 * 1024,
  /**
   * Watch: encoded events kept for watchers catching up over the same history (watch/
   * encoded-event-cache.ts), in entries and in bytes: one catch-up batch's worth, so that a crowd
   * of watchers behind together encodes each event once, not once per watcher.
   */
  watchEncodedEventCacheEntriesMax: 10_000,
  watchEncodedEventCacheBytesMax: 8 * 1024 * 1024,
  /** Watch: catch-up reads started per event-loop turn (etcd's maxWatchersPerSync). */
  watchSyncWatchersPerTurn: 512,
  /** Watch: index keys a history scan examines per event-loop turn (a range watcher over a large keyspace). */
  watchHistoryScanKeysPerTurn: 10_000,
  /**
   * --history-cache-bytes default: values of old revisions read back from the backend that the
   * store keeps for the next read (watchers catching up, --rev reads), least recently used out.
   * History itself lives on disk (mvcc/history-values.ts). Configurable.
   */
  historyCacheBytes: 32 * 1024 * 1024,
  /**
   * Start-up scan of the mvcc history in a worker thread (storage/backend-scan-protocol.ts): the
   * records come to the main thread packed in chunks of this size, at most
   * backendScanChunksInFlightMax unvisited at a time (so at most 16 MiB queued, whatever the
   * backend's size). A bucket LevelDB estimates below backendScanWorkerBytesMin is read inline:
   * starting the worker costs more than it saves there (tests open many small backends).
   */
  backendScanChunkBytes: 4 * 1024 * 1024,
  backendScanChunksInFlightMax: 4,
  /**
   * Worker threads that read the start-up scan at once, each a consecutive part of the bucket
   * (storage/backend.ts scanInWorker). The records are visited in order, so a later part's chunks
   * wait until the parts before it are visited: at most backendScanLookaheadChunksMax each (up
   * to 64 x (4 MiB of keys and record headers + 4 MiB of values); the values that are their key's
   * latest stay in memory anyway, as the store's current values, and the keys and headers are
   * about a fifth of a record of 256 B). At 1M keys of 256 B the second part is about 31 chunks,
   * so it never waits there.
   */
  backendScanWorkers: 2,
  backendScanLookaheadChunksMax: 64,
  backendScanWorkerBytesMin: 4 * 1024 * 1024,
  /**
   * The mvcc history image (mvcc/history-image.ts), which a restart reads instead of iterating
   * LevelDB, is extended once the records it does not cover reach bucketImageRecordsMin
   * (written whole again after a compaction): a restart then reads at most about that many
   * records from LevelDB (~0.1 s at 25,000; 96,000 of them were ~0.5 s of a 1M-key restart).
   * Extending costs about the same per record however often it runs (each record is read from
   * LevelDB once and appended in place); each extension adds two fdatasyncs of the image file.
   * A failed write is tried again after bucketImageRetryMs.
   */
  bucketImageRecordsMin: 25_000,
  bucketImageRetryMs: 60_000,
  /**
   * Chunks of the history image. Smaller than the start-up scan's: the writer (on the main thread)
   * allocates two buffers of this size per chunk, written while the next fills. Reading the image
   * back costs two file reads per chunk.
   */
  bucketImageChunkBytes: 512 * 1024,
  /**
   * Start-up keeps each recovered value as a view of the scan chunk it came in (no copy). A chunk
   * more than this share of whose value bytes were replaced by later records of their key
   * (history) has its surviving values copied into the store's arena, so it can be freed
   * (mvcc/kv-store.ts relocateRecoveredValues).
   */
  recoveryReplacedShareMax: 0.25,
  /** Old revisions' records fetched from the backend per native call (one getMany). */
  historyReadBatchRecords: 1000,
  /**
   * A streaming call's queued output (response bytes waiting for the client's windows or the
   * socket): at this high-water mark `send` returns false; onDrain fires once it is back under the
   * low-water mark (and the connection and member are under their bounds above).
   */
  grpcStreamReplyBytesHighWater: 1024 * 1024,
  grpcStreamReplyBytesLowWater: 256 * 1024,
  /**
   * A producer that goes on sending after `send` said false: past this much queued output on one
   * call (or twice grpcReplyBytesQueuedPerConnectionMax on its connection) the call ends with
   * RESOURCE_EXHAUSTED rather than buffering without bound.
   */
  grpcStreamReplyBytesQueuedMax: 16 * 1024 * 1024,
  /**
   * The server process's V8 heap (platform/heap-tuning.ts): each of the main thread's two
   * young-generation semi-spaces at most this (V8 grows them to 16 MiB each under load and keeps
   * them: 32 MiB of RSS for objects that live a few microseconds).
   */
  heapSemiSpaceMaxBytes: 4 * 1024 * 1024,
  /**
   * Once start-up is over, the next full GC is due when the old generation has grown by this
   * percentage of what the last one left live (V8's own factor goes up to 300%); Go's GOGC=100,
   * as etcd runs.
   */
  heapOldGenerationGrowingPercent: 100,
  /**
   * The idle heap reducer (platform/idle-heap-reducer.ts): every this often it reads the event
   * loop's utilization; a burst's heap slack goes back to the OS within one to two intervals of
   * the load stopping.
   */
  idleHeapCheckIntervalMs: 500,
  /** ... below this busy share over a whole interval the process counts as idle. */
  idleHeapUtilizationMax: 0.05,
  /** ... and a reduction runs once the committed heap has grown this much since the last one. */
  idleHeapGrowthBytesMin: 16 * 1024 * 1024,
  /**
   * ... and only while at most this much of the heap is in use: a memory-reducing GC of ~25 MiB
   * pauses 40-50 ms here (measured on Node 22 and 24); a larger heap is left to V8's own reducer.
   */
  idleHeapUsedBytesMax: 64 * 1024 * 1024,
} as const;
