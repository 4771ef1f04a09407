/**
 * A closed-loop gRPC load generator speaking HTTP/2 frames itself: `connections` TCP connections,
 * each keeping `streamsPerConnection` unary calls in flight (a finished call starts the next at
 * once), for `durationSeconds`. Request bodies are protobuf bytes built by the scenario, framed as
 * gRPC length-prefixed messages (1 byte compressed flag, 4 bytes big-endian length).
 *
 * Why raw frames: the load generator shares the 2 cores with the server, and what it spends is
 * taken from the server. grpc-js's client costs 110-140 µs of CPU per call here (DESIGN.md);
 * node:http2's client saturated a core at about 16k calls/s, below what our server answers. This
 * one sends a call as two frames with a header block encoded once, and reads answers with one
 * HPACK decoder per connection (etcd's grpc-go indexes its response headers), a few µs a call.
 *
 * Per connection: preface, SETTINGS (large stream windows, no push), a connection WINDOW_UPDATE,
 * then HEADERS + DATA(END_STREAM) per call on odd stream ids. Server SETTINGS and PINGs are
 * acknowledged; DATA received is credited back to the connection window in batches. A call
 * succeeds when its stream ends with grpc-status 0 (in trailers, or in a trailers-only answer);
 * latency is from sending the call to the frame that ends its stream.
 */
import { connect, type Socket } from 'node:net';
import { encodeWithoutIndexing, HpackDecoder, STATIC_TABLE, type HeaderField } from '../../src/http/hpack.js';
import type { Measurement } from './side-by-side.js';

export interface GrpcLoadOptions {
  port: number;
  /** Spread the connections round-robin over these ports (a cluster's members) instead of `port`. */
  ports?: number[];
  /** e.g. '/etcdserverpb.KV/Put' (not used with `sequence`) */
  path?: string;
  /** The protobuf request for the next call (called once per call; not used with `sequence`). */
  nextRequest?: () => Uint8Array;
  /**
   * Dependent calls instead of independent ones: each of the streamsPerConnection slots of each
   * connection is one loop that makes these calls in order, each once the one before it has
   * answered, and starts over (a cycle). Request bodies are built per loop and cycle, so a cycle
   * whose later calls refer to an earlier one's result uses ids the client chose (a lease ID).
   */
  sequence?: readonly GrpcCallStep[];
  connections: number;
  streamsPerConnection: number;
  durationSeconds: number;
  /**
   * Behave as a grpc-go client (etcdctl, clientv3, Kubernetes): its BDP estimator, whose window
   * never grows on small replies, answers each DATA it reads while no estimator PING is out with a
   * connection WINDOW_UPDATE and a PING, written together with the next call.
   */
  bdpPings?: boolean;
  /** Stop after this many calls have completed (the duration still bounds the run). */
  callsMax?: number;
}

export interface GrpcCallStep {
  /** e.g. '/etcdserverpb.Lease/LeaseGrant' */
  path: string;
  /** The request of this step for loop `loop` (0-based over all connections' slots) in its `cycle`. */
  request: (loop: number, cycle: number) => Uint8Array;
}

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const DATA = 0x0;
const HEADERS = 0x1;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const PING = 0x6;
const GOAWAY = 0x7;
const CONTINUATION = 0x9;
const END_STREAM = 0x1;
const ACK = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY = 0x20;
const WINDOW_BYTES = 1 << 30;
const CREDIT_BATCH_BYTES = 1 << 20;
/** grpc-go's bdpPing payload. */
const BDP_PING_DATA = Buffer.from([2, 4, 16, 16, 9, 14, 7, 7]);
/** After the load stops, calls in flight get this long to finish before connections are cut. */
const DRAIN_WAIT_MS_MAX = 5000;

function grpcFrame(message: Uint8Array): Buffer {
  const framed = Buffer.allocUnsafe(5 + message.length);
  framed[0] = 0;
  framed.writeUInt32BE(message.length, 1);
  framed.set(message, 5);
  return framed;
}

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(9 + payload.length);
  out.writeUIntBE(payload.length, 0, 3);
  out[3] = type;
  out[4] = flags;
  out.writeUInt32BE(streamId, 5);
  payload.copy(out, 9);
  return out;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

interface Totals {
  latenciesMs: number[];
  errors: number;
  failed: number;
  running: boolean;
  /** Ends the run early (callsMax reached). */
  stop(): void;
}

/** One connection's calls. */
class LoadConnection {
  private readonly decoder = new HpackDecoder({ tableBytesMax: 4096, headerListBytesMax: 1 << 20 });
  private readonly started = new Map<number, number>();
  /** Sequence mode: the slot each open stream belongs to, and each slot's next step and cycle. */
  private readonly slotOf = new Map<number, number>();
  private readonly slotStep: number[];
  private readonly slotCycle: number[];
  private readonly status = new Map<number, string>();
  private nextStreamId = 1;
  private leftover: Buffer | undefined;
  private continuation: { streamId: number; flags: number; fragments: Buffer[] } | undefined;
  private out: Buffer[] = [];
  private flushScheduled = false;
  private credit = 0;
  /** A BDP PING is out, not yet acknowledged (grpc-go's bdpEstimator.isSent). */
  private bdpPingOut = false;
  private closed = false;
  readonly done: Promise<void>;
  private resolveDone!: () => void;

  constructor(
    private readonly socket: Socket,
    private readonly options: GrpcLoadOptions,
    /** One header block per path: the only one, or one per sequence step. */
    private readonly headerBlocks: Buffer[],
    private readonly totals: Totals,
    /** This connection's place, so sequence loops are numbered across connections. */
    private readonly index: number,
  ) {
    this.done = new Promise((resolve) => { this.resolveDone = resolve; });
    this.slotStep = new Array<number>(options.streamsPerConnection).fill(0);
    this.slotCycle = new Array<number>(options.streamsPerConnection).fill(0);
    const settings = Buffer.alloc(12);
    settings.writeUInt16BE(0x2, 0); // ENABLE_PUSH 0
    settings.writeUInt32BE(0, 2);
    settings.writeUInt16BE(0x4, 6); // INITIAL_WINDOW_SIZE
    settings.writeUInt32BE(WINDOW_BYTES, 8);
    const increment = Buffer.allocUnsafe(4);
    increment.writeUInt32BE(WINDOW_BYTES - 65_535, 0);
    this.queue(Buffer.concat([PREFACE, frame(SETTINGS, 0, 0, settings), frame(0x8, 0, 0, increment)]));
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', () => this.fail());
    socket.on('close', () => this.fail());
  }

  start(): void {
    for (let i = 0; i < this.options.streamsPerConnection; i++) this.call(i);
  }

  /** Set once the first call's header block (which fills the server's HPACK table) is queued. */
  private headersIndexed = false;

  private call(slot: number): void {
    if (!this.totals.running || this.closed) {
      if (this.started.size === 0) this.finish();
      return;
    }
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    this.started.set(id, performance.now());
    const sequence = this.options.sequence;
    let headerBlock = this.headerBlocks[0]!;
    let body: Uint8Array;
    if (sequence === undefined) {
      body = this.options.nextRequest!();
      // headerBlocks[0] adds the headers to the server's table, [1] names them by index.
      if (this.headersIndexed) headerBlock = this.headerBlocks[1]!;
      this.headersIndexed = true;
    } else {
      const step = this.slotStep[slot]!;
      headerBlock = this.headerBlocks[step]!;
      body = sequence[step]!.request(this.index * this.options.streamsPerConnection + slot, this.slotCycle[slot]!);
      this.slotOf.set(id, slot);
    }
    this.queue(frame(HEADERS, END_HEADERS, id, headerBlock));
    this.queue(frame(DATA, END_STREAM, id, grpcFrame(body)));
  }

  private queue(bytes: Buffer): void {
    this.out.push(bytes);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(() => {
        this.flushScheduled = false;
        if (this.closed) return;
        const data = this.out.length === 1 ? this.out[0]! : Buffer.concat(this.out);
        this.out = [];
        this.socket.write(data);
      });
    }
  }

  private receive(chunk: Buffer): void {
    const buf = this.leftover === undefined ? chunk : Buffer.concat([this.leftover, chunk]);
    let at = 0;
    while (buf.length - at >= 9) {
      const length = buf.readUIntBE(at, 3);
      if (buf.length - at < 9 + length) break;
      const type = buf[at + 3]!;
      const flags = buf[at + 4]!;
      const streamId = buf.readUInt32BE(at + 5) & 0x7fffffff;
      const payload = buf.subarray(at + 9, at + 9 + length);
      at += 9 + length;
      this.onFrame(type, flags, streamId, payload);
    }
    this.leftover = at < buf.length ? buf.subarray(at) : undefined;
  }

  private onFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    switch (type) {
      case DATA:
        this.credit += payload.length;
        if (this.options.bdpPings === true && !this.bdpPingOut) {
          // grpc-go's handleData: the window update first ("to avoid excessive ping detection"), then the PING.
          this.bdpPingOut = true;
          const increment = Buffer.allocUnsafe(4);
          increment.writeUInt32BE(Math.max(1, this.credit), 0);
          this.queue(frame(0x8, 0, 0, increment));
          this.queue(frame(PING, 0, 0, BDP_PING_DATA));
          this.credit = 0;
        } else if (this.credit >= CREDIT_BATCH_BYTES) {
          const increment = Buffer.allocUnsafe(4);
          increment.writeUInt32BE(this.credit, 0);
          this.queue(frame(0x8, 0, 0, increment));
          this.credit = 0;
        }
        if (flags & END_STREAM) this.end(streamId, false);
        return;
      case HEADERS: {
        let start = 0;
        let end = payload.length;
        if (flags & PADDED) {
          start = 1;
          end -= payload[0]!;
        }
        if (flags & PRIORITY) start += 5;
        const fragment = payload.subarray(start, end);
        if (flags & END_HEADERS) this.onHeaderBlock(streamId, flags, fragment);
        else this.continuation = { streamId, flags, fragments: [Buffer.from(fragment)] };
        return;
      }
      case CONTINUATION: {
        const c = this.continuation;
        if (c === undefined) return this.fail();
        c.fragments.push(Buffer.from(payload));
        if (flags & END_HEADERS) {
          this.continuation = undefined;
          this.onHeaderBlock(c.streamId, c.flags, Buffer.concat(c.fragments));
        }
        return;
      }
      case RST_STREAM:
        this.end(streamId, true);
        return;
      case SETTINGS:
        if ((flags & ACK) === 0) this.queue(frame(SETTINGS, ACK, 0, Buffer.alloc(0)));
        return;
      case PING:
        if ((flags & ACK) === 0) this.queue(frame(PING, ACK, 0, Buffer.from(payload)));
        else if (payload.equals(BDP_PING_DATA)) this.bdpPingOut = false;
        return;
      case GOAWAY:
        this.fail();
        return;
      default:
        return;
    }
  }

  private onHeaderBlock(streamId: number, flags: number, block: Buffer): void {
    for (const [name, value] of this.decoder.decode(block)) {
      if (name === 'grpc-status') this.status.set(streamId, value);
    }
    if (flags & END_STREAM) this.end(streamId, false);
  }

  private end(streamId: number, reset: boolean): void {
    const started = this.started.get(streamId);
    if (started === undefined) return;
    this.started.delete(streamId);
    const status = this.status.get(streamId);
    this.status.delete(streamId);
    if (reset) this.totals.errors++;
    else if (status !== '0') this.totals.failed++;
    else this.totals.latenciesMs.push(performance.now() - started);
    if (this.options.callsMax !== undefined && this.totals.latenciesMs.length + this.totals.errors + this.totals.failed >= this.options.callsMax) this.totals.stop();
    let slot = 0;
    const sequence = this.options.sequence;
    if (sequence !== undefined) {
      slot = this.slotOf.get(streamId)!;
      this.slotOf.delete(streamId);
      if (++this.slotStep[slot]! === sequence.length) {
        this.slotStep[slot] = 0;
        this.slotCycle[slot]!++;
      }
    }
    this.call(slot);
  }

  private fail(): void {
    if (this.closed) return;
    this.closed = true;
    this.totals.errors += this.started.size;
    this.started.clear();
    this.finish();
  }

  private finish(): void {
    this.resolveDone();
  }

  destroy(): void {
    this.closed = true;
    this.socket.destroy();
  }
}

export async function runGrpcLoad(options: GrpcLoadOptions): Promise<Measurement> {
  let stopEarly: () => void = () => {};
  const totals: Totals = { latenciesMs: [], errors: 0, failed: 0, running: true, stop: () => stopEarly() };
  const paths = options.sequence !== undefined ? options.sequence.map((step) => step.path) : [options.path!];
  const headersOf = (path: string, port: number): HeaderField[] => [
    [':method', 'POST'], [':scheme', 'http'], [':path', path], [':authority', `127.0.0.1:${port}`],
    ['content-type', 'application/grpc'], ['te', 'trailers'],
  ];
  const headerBlocksFor = (port: number): Buffer[] => (options.sequence !== undefined
    ? paths.map((path) => encodeWithoutIndexing(headersOf(path, port)))
    : indexedHeaderBlocks(headersOf(paths[0]!, port)));
  const connections: LoadConnection[] = [];
  for (let c = 0; c < options.connections; c++) {
    const port = options.ports !== undefined && options.ports.length > 0 ? options.ports[c % options.ports.length]! : options.port;
    const socket = connect({ host: '127.0.0.1', port, noDelay: true });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    });
    connections.push(new LoadConnection(socket, options, headerBlocksFor(port), totals, c));
  }
  const startedAt = performance.now();
  for (const connection of connections) connection.start();
  const durationMs = options.durationSeconds * 1000;
  let runTimer: NodeJS.Timeout | undefined;
  await new Promise<void>((resolve) => {
    stopEarly = resolve;
    runTimer = setTimeout(resolve, durationMs); // the load runs for this long
  });
  clearTimeout(runTimer);
  totals.running = false;
  const elapsedSeconds = (performance.now() - startedAt) / 1000;
  const completed = totals.latenciesMs.length;
  // Let the calls in flight finish (a few ms), so connections close cleanly; never wait long.
  let drainTimer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.all(connections.map((c) => c.done)), new Promise((resolve) => { drainTimer = setTimeout(resolve, DRAIN_WAIT_MS_MAX); })]);
  clearTimeout(drainTimer);
  for (const connection of connections) connection.destroy();
  const sorted = Float64Array.from(totals.latenciesMs.slice(0, completed)).sort();
  const round = (ms: number) => Math.round(ms * 100) / 100;
  return {
    requestsPerSecond: completed / elapsedSeconds,
    p50Ms: round(percentile(sorted, 0.5)),
    p99Ms: round(percentile(sorted, 0.99)),
    errors: totals.errors,
    non2xx: totals.failed,
  };
}

/**
 * Two HPACK header blocks for the same header list: the first adds every field that is not in the
 * static table to the receiver's dynamic table (literal with incremental indexing, static name
 * index where there is one, raw strings), the second names every field by index. The second is
 * valid only after the first on the same connection, with nothing else added in between.
 */
export function indexedHeaderBlocks(headers: readonly HeaderField[]): [Buffer, Buffer] {
  const staticPair = new Map<string, number>();
  const staticName = new Map<string, number>();
  STATIC_TABLE.forEach(([name, value], i) => {
    if (!staticPair.has(`${name}\0${value}`)) staticPair.set(`${name}\0${value}`, i + 1);
    if (!staticName.has(name)) staticName.set(name, i + 1);
  });
  const first: number[] = [];
  const integer = (out: number[], value: number, prefixBits: number, firstByte: number): void => {
    const mask = (1 << prefixBits) - 1;
    if (value < mask) {
      out.push(firstByte | value);
      return;
    }
    out.push(firstByte | mask);
    for (value -= mask; value >= 0x80; value = Math.floor(value / 0x80)) out.push((value % 0x80) | 0x80);
    out.push(value);
  };
  const string = (text: string): void => {
    integer(first, text.length, 7, 0);
    first.push(...Buffer.from(text, 'latin1'));
  };
  const inserted: number[] = []; // positions in `headers` added to the dynamic table, in order
  headers.forEach(([name, value], position) => {
    const pair = staticPair.get(`${name}\0${value}`);
    if (pair !== undefined) {
      integer(first, pair, 7, 0x80);
      return;
    }
    const nameIndex = staticName.get(name);
    integer(first, nameIndex ?? 0, 6, 0x40);
    if (nameIndex === undefined) string(name);
    string(value);
    inserted.push(position);
  });
  const later: number[] = [];
  headers.forEach(([name, value], position) => {
    const pair = staticPair.get(`${name}\0${value}`);
    // The newest entry of the dynamic table is index 62, older ones follow it.
    const index = pair ?? STATIC_TABLE.length + inserted.length - inserted.indexOf(position);
    integer(later, index, 7, 0x80);
  });
  return [Buffer.from(first), Buffer.from(later)];
}
