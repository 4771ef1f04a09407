/**
 * The one client port, as etcd serves it: gRPC (HTTP/2 with prior knowledge, h2c, as etcdctl 3.4
 * and grpc-js clients connect) and the JSON gateway (HTTP/1.1) on the same TCP listener.
 *
 * Each accepted connection is peeked: a connection that opens with the HTTP/2 client preface
 * ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") goes to our gRPC server (grpc/grpc-server.ts, on our own
 * HTTP/2 in http/http2-connection.ts) with the bytes already read;
 * anything else is HTTP/1.x: the gateway's fast path reads it (http/http1-fast-path.ts) and hands the
 * connection to a node:http server at the first request it does not serve itself. Peeked or
 * unread bytes are put back (socket.unshift) before a connection changes hands, so no server knows.
 *
 * Bounds on connections themselves: at most Limits.clientConnectionsMax open (more are closed at
 * accept); a connection that sends nothing is closed after Limits.clientFirstBytesTimeoutMs, an HTTP/2 one
 * without its preface and SETTINGS after Limits.http2PrefaceTimeoutMs, an HTTP/1.1 one without a
 * whole request head after Limits.httpHeadTimeoutMs; and any connection whose queued replies do not
 * move for Limits.clientWriteStallMs is closed (HTTP/2 in http2-connection.ts, HTTP/1.1 by a sweep
 * here, over the fast path's sockets and node:http's alike). Each such closure is counted in
 * keyraft_client_connections_closed_total{reason} and logged, rate-limited.
 *
 * gRPC is served by our own HTTP/2 with our codecs rather than by @grpc/grpc-js or node:http2:
 * both cost more CPU per call than etcd's whole budget (grpc-server.ts has the numbers).
 */
import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { Counter, Gauge, type Registry } from 'prom-client';
import { Limits } from '../platform/limits.js';
import type { Logger } from '../platform/logger.js';
import { packageRoot } from '../platform/package-root.js';
import type { MemberApi } from '../server/raft-kv.js';
import { ApiMetrics } from './api-metrics.js';
import { Gateway } from './gateway.js';
import { Http1FastConnection, type Http1Timeouts } from '../http/http1-fast-path.js';
import { GrpcServer } from '../grpc/grpc-server.js';
import { HTTP2_PREFACE, type Http2Timing } from '../http/http2-connection.js';
import { ConnectionClosures } from '../http/connection-closures.js';
import { WriteStall } from '../http/write-stall.js';
import { toApiFailure } from './error-mapping.js';
import { grpcMethodOf, methodTable, type MethodDeps, type MethodRow } from './methods.js';
import { HttpEndpoints } from './http-endpoints.js';
import { KvService } from './kv-service.js';

export interface ClientServerOptions {
  member: MemberApi;
  host: string;
  /** 0 picks a free port; the returned `port` is the real one. */
  port: number;
  logger: Logger;
  metricsRegistry: Registry;
  /** HTTP/1.1 head and body deadlines; Limits' values unless a test wants them short. */
  httpHeadTimeoutMs?: number;
  httpBodyIdleTimeoutMs?: number;
  /** HTTP/2 deadlines (preface, trickled frames, keepalive): Limits unless given (tests shorten them). */
  http2Timing?: Partial<Http2Timing>;
  /** The RPCs served: methods.ts's table unless given (tests add rows of their own). */
  methods?: readonly MethodRow[];
  /** Request bytes all HTTP/2 connections may hold at once: Limits.http2RequestBytesBufferedMax unless given. */
  http2RequestBytesBufferedMax?: number;
  /** Client connections open at once: Limits.clientConnectionsMax unless given (--max-client-connections). */
  clientConnectionsMax?: number;
}

export interface ClientServer {
  port: number;
  close(): Promise<void>;
}

export async function startClientServer(options: ClientServerOptions): Promise<ClientServer> {
  const logger = options.logger.child({ component: 'api' });
  const kv = new KvService(options.member);
  const keyraftVersion = await readKeyraftVersion();

  const metrics = new ApiMetrics(options.metricsRegistry);
  const closures = new ConnectionClosures(logger);
  registerClosureMetric(options.metricsRegistry, closures);
  // One write-stall bound for the port: HTTP/2 connections take it from their timing, HTTP/1.1 from here.
  const writeStallMs = options.http2Timing?.writeStallMs ?? Limits.clientWriteStallMs;
  const grpcServer = new GrpcServer(kv.grpcMaxReceiveBytes, logger, metrics, (err, context) => toApiFailure(err, logger, context), options.http2Timing, options.http2RequestBytesBufferedMax, closures);
  grpcServer.setLeaderCheck(() => options.member.hasLeader());
  const deps: MethodDeps = { member: options.member, kv };
  const rows = options.methods ?? methodTable;
  for (const row of rows) {
    const method = grpcMethodOf(row, deps);
    if (method !== undefined) grpcServer.addMethod(method);
  }

  const endpoints = new HttpEndpoints(options.member, options.metricsRegistry, keyraftVersion, logger);
  const gateway = new Gateway(kv, endpoints, logger, metrics, rows, options.httpBodyIdleTimeoutMs ?? Limits.httpBodyIdleTimeoutMs);
  const http1Timeouts: Http1Timeouts = {
    idleMs: Limits.httpKeepAliveTimeoutMs,
    headMs: options.httpHeadTimeoutMs ?? Limits.httpHeadTimeoutMs,
    bodyIdleMs: options.httpBodyIdleTimeoutMs ?? Limits.httpBodyIdleTimeoutMs,
  };
  // node:http gets the same head deadline for the connections handed to it (its default is 60 s).
  // Its whole-request deadline (requestTimeout, 300 s) is off: a streaming gateway call (a watch)
  // sends its body for as long as it lasts; the gateway bounds a unary body's stalls itself.
  const httpServer: HttpServer = createHttpServer({ keepAliveTimeout: Limits.httpKeepAliveTimeoutMs, headersTimeout: http1Timeouts.headMs, requestTimeout: 0 }, gateway.handle);
  httpServer.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    // Malformed HTTP: answer 400 if the socket can still take it, as Go's server does, and close.
    if (socket.writable && err.code !== 'ECONNRESET') socket.end('HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request');
    else socket.destroy();
  });

  const sockets = new Set<Socket>();
  const http1Sockets = new Map<Socket, WriteStall>();
  const netServer = createNetServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      http1Sockets.delete(socket);
    });
    classify(socket, grpcServer, gateway, httpServer, http1Timeouts, logger, () => http1Sockets.set(socket, new WriteStall()));
  });
  registerQueuedMetric(options.metricsRegistry, () => {
    let bytes = grpcServer.budget.replyBytes;
    for (const socket of sockets) bytes += socket.writableLength;
    return bytes;
  });
  // Past the cap, node closes a new connection at accept (it never reaches us) and says so.
  netServer.maxConnections = options.clientConnectionsMax ?? Limits.clientConnectionsMax;
  netServer.on('drop', (dropped?: { remoteAddress?: string }) => {
    closures.record('connection_limit', { remoteAddress: dropped?.remoteAddress, max: netServer.maxConnections });
  });
  // HTTP/1.1 write stalls: one sweep for every socket (HTTP/2 connections check their own).
  const http1Sweep = setInterval(() => {
    const now = Date.now();
    for (const [socket, stall] of http1Sockets) {
      if (stall.stalled(socket, socket.writableLength, 0, now, writeStallMs)) {
        closures.record('write_stall', { protocol: 'http/1.1', queuedBytes: socket.writableLength });
        socket.destroy();
      }
    }
  }, Math.max(10, Math.min(1000, writeStallMs / 4)));
  http1Sweep.unref();

  await new Promise<void>((resolve, reject) => {
    netServer.once('error', reject);
    netServer.listen(options.port, options.host, () => {
      netServer.off('error', reject);
      resolve();
    });
  });
  netServer.on('error', (err) => logger.error({ err }, 'client listener error'));
  const address = netServer.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;

  let closing: Promise<void> | undefined;
  return {
    port,
    close() {
      closing ??= (async () => {
        const listenerClosed = new Promise<void>((resolve) => netServer.close(() => resolve()));
        clearInterval(http1Sweep);
        grpcServer.close();
        httpServer.closeAllConnections();
        for (const socket of sockets) socket.destroy();
        await listenerClosed;
      })();
      return closing;
    },
  };
}

/**
 * Reads until the first bytes tell HTTP/2 from HTTP/1.x, then hands the socket over with those
 * bytes put back. HTTP/1.x methods differ from "PRI" by the second byte at the latest, so only an
 * HTTP/2 client (or a client sending a prefix of the preface) waits for the full 24 bytes.
 */
function classify(
  socket: Socket, grpcServer: GrpcServer, gateway: Gateway, httpServer: HttpServer, http1Timeouts: Http1Timeouts, logger: Logger, onHttp1: () => void,
): void {
  let head: Buffer | undefined;
  const onData = (chunk: Buffer): void => {
    head = head === undefined ? chunk : Buffer.concat([head, chunk]);
    const n = Math.min(head.length, HTTP2_PREFACE.length);
    const isHttp2 = head.compare(HTTP2_PREFACE, 0, n, 0, n) === 0;
    if (isHttp2 && head.length < HTTP2_PREFACE.length) return;
    socket.off('data', onData);
    socket.off('error', onError);
    socket.off('timeout', onTimeout);
    socket.setTimeout(0);
    if (isHttp2) {
      socket.pause();
      grpcServer.injectConnection(socket, head);
    } else {
      // HTTP/1.x: the fast path takes the gateway's hot requests and hands anything else to node.
      onHttp1();
      const fast = new Http1FastConnection(socket, gateway, (s, unread) => handToNodeHttp(s, unread, httpServer), http1Timeouts);
      fast.receive(head);
    }
  };
  const onError = (err: Error): void => {
    logger.debug({ err }, 'client connection failed before its first request');
    socket.destroy();
  };
  const onTimeout = (): void => {
    socket.destroy();
  };
  socket.on('data', onData);
  socket.on('error', onError);
  socket.setTimeout(Limits.clientFirstBytesTimeoutMs);
  socket.on('timeout', onTimeout);
}

/** Gives node:http a connection, with bytes already read put back in front. */
function handToNodeHttp(socket: Socket, unread: Buffer | undefined, httpServer: HttpServer): void {
  socket.pause();
  if (unread !== undefined && unread.length > 0) socket.unshift(unread);
  httpServer.emit('connection', socket);
  // The http server has added its own 'data' listener; our pause() would otherwise hold it.
  process.nextTick(() => socket.resume());
}

const queuedByRegistry = new WeakMap<Registry, Set<() => number>>();

/**
 * keyraft_client_reply_bytes_queued: reply bytes the member holds for its clients (queued on HTTP/2
 * streams, or written to a socket and not yet taken by the kernel), summed over client ports.
 */
function registerQueuedMetric(registry: Registry, queuedBytes: () => number): void {
  const known = queuedByRegistry.get(registry);
  if (known !== undefined) {
    known.add(queuedBytes);
    return;
  }
  const all = new Set([queuedBytes]);
  queuedByRegistry.set(registry, all);
  new Gauge({
    name: 'keyraft_client_reply_bytes_queued',
    help: 'Reply bytes held for clients: queued on HTTP/2 streams or in socket buffers.',
    registers: [registry],
    collect() {
      let bytes = 0;
      for (const f of all) bytes += f();
      this.set(bytes);
    },
  });
}

/** The closures of every client port sharing one registry (a member may listen on several URLs). */
const closuresByRegistry = new WeakMap<Registry, Set<ConnectionClosures>>();

/** keyraft_client_connections_closed_total{reason}: brought up to date from every port's closures when scraped. */
function registerClosureMetric(registry: Registry, closures: ConnectionClosures): void {
  const known = closuresByRegistry.get(registry);
  if (known !== undefined) {
    known.add(closures);
    return;
  }
  const all = new Set([closures]);
  closuresByRegistry.set(registry, all);
  new Counter({
    name: 'keyraft_client_connections_closed_total',
    help: 'Client connections closed by a bound of the member (reason: write_stall, connection_limit).',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const c of all) for (const [reason, count] of c.counts) this.inc({ reason }, count);
    },
  });
}

async function readKeyraftVersion(): Promise<string> {
  const pkg = JSON.parse(await readFile(join(packageRoot, 'package.json'), 'utf8')) as { version?: string };
  return pkg.version ?? 'unknown';
}
