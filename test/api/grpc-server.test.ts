/**
 * Our gRPC framing on node:http2, seen from a raw HTTP/2 client: statuses in trailers and
 * trailers-only answers, the receive limit from the length prefix (grpc-go's text), compressed
 * messages, non-gRPC requests, a message spread over many DATA frames, and a cancelled call.
 */
import { connect, constants, type ClientHttp2Session } from 'node:http2';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { percentEncodeGrpcMessage } from '../../src/grpc/grpc-server.js';
import { decode, encode, messageType } from '../../src/proto/codec.js';
import { startWithMemoryMember, type Running } from './helpers.js';

let running: Running;
let session: ClientHttp2Session;

test.before(async () => {
  running = await startWithMemoryMember({ maxRequestBytes: 4096 });
  session = connect(`http://127.0.0.1:${running.server.port}`);
});

test.after(async () => {
  session.destroy();
  await running.server.close();
});

interface Answer {
  status: number;
  headers: Record<string, unknown>;
  trailers: Record<string, unknown>;
  body: Buffer;
}

function frame(message: Uint8Array, compressed = false): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out[0] = compressed ? 1 : 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

function call(path: string, chunks: Buffer[], headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...headers });
    let responseHeaders: Record<string, unknown> = {};
    let trailers: Record<string, unknown> = {};
    const body: Buffer[] = [];
    req.on('response', (h) => (responseHeaders = h));
    req.on('trailers', (t) => (trailers = t));
    req.on('data', (d: Buffer) => body.push(d));
    req.on('end', () => resolve({ status: Number(responseHeaders[':status']), headers: responseHeaders, trailers, body: Buffer.concat(body) }));
    req.on('error', reject);
    for (const c of chunks) req.write(c);
    req.end();
  });
}

/** grpc-status of an answer: in the trailers, or in the headers of a trailers-only answer. */
const statusOf = (a: Answer): string => String(a.trailers['grpc-status'] ?? a.headers['grpc-status']);
const messageOf = (a: Answer): string => decodeURIComponent(String(a.trailers['grpc-message'] ?? a.headers['grpc-message'] ?? ''));

test('a unary call: headers, one length-prefixed message, grpc-status 0 in trailers', async () => {
  const putType = messageType('etcdserverpb.PutRequest');
  const request = frame(encode(putType, { key: Buffer.from('h2'), value: Buffer.from('raw') }));
  // One byte per DATA write: the message arrives in many pieces.
  const answer = await call('/etcdserverpb.KV/Put', [...request].map((b) => Buffer.from([b])));
  assert.is(answer.status, 200);
  assert.is(answer.headers['content-type'], 'application/grpc');
  assert.is(statusOf(answer), '0');
  assert.is(answer.body.readUInt32BE(1), answer.body.length - 5);
  const response = decode<any>(messageType('etcdserverpb.PutResponse'), answer.body.subarray(5));
  assert.is(response.header.member_id, running.member.memberId);
});

test('hasleader metadata: "etcdserver: no leader" (UNAVAILABLE) while the member knows no leader, as Kubernetes expects', async () => {
  const range = frame(encode(messageType('etcdserverpb.RangeRequest'), { key: Buffer.from('k') }));
  running.member.healthy = false;
  try {
    const refused = await call('/etcdserverpb.KV/Range', [range], { hasleader: 'true' });
    assert.is(statusOf(refused), '14');
    assert.is(messageOf(refused), 'etcdserver: no leader');
    // Without the metadata the call goes to the member as usual.
    assert.is(statusOf(await call('/etcdserverpb.KV/Range', [range])), '0');
  } finally {
    running.member.healthy = true;
  }
  assert.is(statusOf(await call('/etcdserverpb.KV/Range', [range], { hasleader: 'true' })), '0');
});

test('failures are trailers-only with etcd\'s code and message', async () => {
  const answer = await call('/etcdserverpb.KV/Range', [frame(encode(messageType('etcdserverpb.RangeRequest'), {}))]);
  assert.is(answer.body.length, 0);
  assert.is(answer.headers['grpc-status'], '3');
  assert.is(messageOf(answer), 'etcdserver: key is not provided');
});

test('receive limit: refused from the length prefix with grpc-go\'s text; the proposal limit below it', async () => {
  const limit = 4096 + 512 * 1024;
  const header = Buffer.alloc(5);
  header.writeUInt32BE(limit + 1, 1);
  const tooBig = await call('/etcdserverpb.KV/Put', [header]);
  assert.is(statusOf(tooBig), '8'); // RESOURCE_EXHAUSTED
  assert.is(messageOf(tooBig), `grpc: received message larger than max (${limit + 1} vs. ${limit})`);
  const put = frame(encode(messageType('etcdserverpb.PutRequest'), { key: Buffer.from('k'), value: Buffer.alloc(100_000) }));
  const large = await call('/etcdserverpb.KV/Put', [put]);
  assert.is(messageOf(large), 'etcdserver: request is too large');
});

test('compressed messages, unknown methods and non-gRPC requests', async () => {
  const compressed = await call('/etcdserverpb.KV/Range', [frame(Buffer.from([0x0a, 0x01, 0x61]), true)], { 'grpc-encoding': 'gzip' });
  assert.is(statusOf(compressed), '12');
  assert.is(messageOf(compressed), 'grpc: Decompressor is not installed for grpc-encoding "gzip"');
  const unknownMethod = await call('/etcdserverpb.KV/Nope', []);
  assert.is(messageOf(unknownMethod), 'unknown method Nope for service etcdserverpb.KV');
  const unknownService = await call('/etcdserverpb.Lease/LeaseGrant', []);
  assert.is(messageOf(unknownService), 'unknown service etcdserverpb.Lease');
  const notGrpc = await call('/etcdserverpb.KV/Range', [], { 'content-type': 'text/plain' });
  assert.is(notGrpc.status, 415);
  const empty = await call('/etcdserverpb.KV/Range', []);
  assert.is(statusOf(empty), '13');
});

test('a call cancelled by the client does not disturb the session', async () => {
  const req = session.request({ ':method': 'POST', ':path': '/etcdserverpb.KV/Put', 'content-type': 'application/grpc', te: 'trailers' });
  req.on('error', () => undefined);
  req.write(Buffer.from([0, 0, 0, 0]));
  req.close(constants.NGHTTP2_CANCEL);
  const after = await call('/etcdserverpb.Maintenance/Status', [frame(new Uint8Array(0))]);
  assert.is(statusOf(after), '0');
});

test('grpc-message is percent-encoded outside printable ASCII', () => {
  assert.is(percentEncodeGrpcMessage('plain text'), 'plain text');
  assert.is(percentEncodeGrpcMessage('50% é\n'), '50%25 %C3%A9%0A');
});

test.run();
