import * as http2 from 'node:http2';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ERR_TOO_MANY_WATCH_STREAMS } from '../../src/api/watch-service.js';
import { GrpcCode } from '../../src/platform/errors.js';
import { Limits } from '../../src/platform/limits.js';
import { encode, messageType } from '../../src/proto/codec.js';
import { httpRequest, killAll, startKeyraft, type ServerProcess } from '../integration/harness.js';

/**
 * The bound on Watch calls per client connection (Limits.watchStreamsPerConnectionMax): one past
 * it ends at once with RESOURCE_EXHAUSTED naming the limit; a call that ends, however it ends
 * (the client's reset, a failure of the call such as a too-large message), frees its place; other
 * connections have their own count. Raw node:http2 with gRPC framing, so that one connection
 * carries every stream (grpc-js would spread them).
 */

const watchRequestType = messageType('etcdserverpb.WatchRequest');

function framed(message: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

const CREATE = framed(encode(watchRequestType, { create_request: { key: Buffer.from('limit-test') } }));

interface Outcome {
  /** The first response message arrived (the created response): the call is open and counted. */
  created: boolean;
  status?: number;
  message?: string;
}

/** Opens a Watch call on `session` and sends a create; resolves at the first response message or the call's status. */
function openWatch(session: http2.ClientHttp2Session): { stream: http2.ClientHttp2Stream; outcome: Promise<Outcome> } {
  const stream = session.request({ ':method': 'POST', ':path': '/etcdserverpb.Watch/Watch', 'content-type': 'application/grpc', te: 'trailers' }, { endStream: false });
  const outcome = new Promise<Outcome>((resolve) => {
    const fromHeaders = (headers: http2.IncomingHttpHeaders): void => {
      if (headers['grpc-status'] !== undefined) resolve({ created: false, status: Number(headers['grpc-status']), message: decodeURIComponent(String(headers['grpc-message'] ?? '')) });
    };
    stream.on('response', fromHeaders); // a trailers-only answer
    stream.on('trailers', fromHeaders);
    stream.on('data', () => resolve({ created: true }));
    stream.on('error', () => resolve({ created: false }));
    stream.on('close', () => resolve({ created: false }));
  });
  stream.write(CREATE);
  return { stream, outcome };
}

async function gauge(server: ServerProcess, name: string): Promise<number> {
  const body = (await httpRequest(server.clientPort, 'GET', '/metrics')).body;
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(body);
  return m === null ? -1 : Number(m[1]);
}

async function connect(server: ServerProcess): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(`http://127.0.0.1:${server.clientPort}`);
  session.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    session.once('connect', () => resolve());
    session.once('error', reject);
  });
  return session;
}

test(`a connection holds at most ${Limits.watchStreamsPerConnectionMax} Watch calls; one more gets RESOURCE_EXHAUSTED naming the limit; an ended call frees its place`, async () => {
  const server = await startKeyraft();
  const sessions: http2.ClientHttp2Session[] = [];
  try {
    const session = await connect(server);
    sessions.push(session);
    const max = Limits.watchStreamsPerConnectionMax;
    const open = Array.from({ length: max }, () => openWatch(session));
    const outcomes = await Promise.all(open.map((o) => o.outcome));
    assert.is(outcomes.filter((o) => o.created).length, max, 'every call up to the limit is served');

    const over = await openWatch(session).outcome;
    assert.equal(over, { created: false, status: GrpcCode.RESOURCE_EXHAUSTED, message: ERR_TOO_MANY_WATCH_STREAMS });
    assert.match(ERR_TOO_MANY_WATCH_STREAMS, String(max));

    // Another connection has its own count.
    const other = await connect(server);
    sessions.push(other);
    assert.is((await openWatch(other).outcome).created, true, 'a second connection is not limited by the first');

    // The client resets one call: its place is free again.
    open[0]!.stream.close(http2.constants.NGHTTP2_CANCEL);
    assert.is((await openWatch(session).outcome).created, true, 'a reset call still counted');

    // A call that fails on the client's input (a message over the receive limit) frees its place,
    // and its watcher goes with it.
    const watchersBefore = await gauge(server, 'etcd_debugging_mvcc_watcher_total');
    const failing = open[1]!;
    const status = new Promise<number>((resolve) => failing.stream.on('trailers', (h) => resolve(Number(h['grpc-status']))));
    const hugePrefix = Buffer.alloc(5);
    hugePrefix.writeUInt32BE(0x7fffffff, 1);
    failing.stream.write(hugePrefix);
    assert.is(await status, GrpcCode.RESOURCE_EXHAUSTED);
    assert.is((await openWatch(session).outcome).created, true, 'a failed call still counted');
    // The failed call's watcher is gone, the new call's is there: the same count as before.
    assert.is(await gauge(server, 'etcd_debugging_mvcc_watcher_total'), watchersBefore);
  } finally {
    for (const s of sessions) s.destroy();
    await server.kill9();
    await killAll();
  }
});

test.run();
