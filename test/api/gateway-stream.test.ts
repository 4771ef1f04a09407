/**
 * The JSON gateway's streaming form (gateway-stream.ts) over HTTP/1.1, through the real client port
 * with the test-only echo rows (echo-methods.ts): a chunked request body carrying JSON requests
 * over time, answered by one `{"result":...}` line each on a chunked reply; half-close by ending
 * the body; grpc-gateway's error line; the first request failing to parse; a server-stream path;
 * a client that goes away; and a streaming request after a fast-path request on one connection.
 * The shapes were read from etcd 3.4.23's gateway with curl (/v3/watch, /v3/lease/keepalive):
 * 200, `Transfer-Encoding: chunked`, `Content-Type: application/json`, one
 * `{"result":{...}}\n` per response; `{bad` as the first request: 500
 * {"error":"invalid character 'b' looking for beginning of object key string",...,"code":2}.
 */
import { connect, type Socket } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../src/platform/logger.js';
import { JsonSequenceReader } from '../../src/api/json-sequence.js';
import { probe, resetProbe, tableWithEcho } from './echo-methods.js';
import { b64, httpRequest, startWithMemoryMember, type Running } from './helpers.js';

let running: Running;
const sockets = new Set<Socket>();

test.before(async () => {
  running = await startWithMemoryMember({}, silentLogger, { methods: tableWithEcho });
});

test.before.each(() => resetProbe());

test.after.each(() => {
  for (const s of sockets) s.destroy();
  sockets.clear();
});

test.after(async () => {
  await running.server.close();
});

async function until(condition: () => boolean, what: () => string): Promise<void> {
  for (let i = 0; i < 2000 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.ok(condition(), `timed out waiting for ${what()}`);
}

/** One HTTP/1.1 connection: we write what we like, and read the reply head and its chunked body as it comes. */
class StreamingClient {
  readonly socket: Socket;
  private raw = Buffer.alloc(0);
  closed = false;

  constructor(port: number) {
    this.socket = connect(port, '127.0.0.1');
    sockets.add(this.socket);
    this.socket.on('data', (chunk: Buffer) => (this.raw = Buffer.concat([this.raw, chunk])));
    this.socket.on('close', () => (this.closed = true));
    this.socket.on('error', () => undefined);
  }

  /** Forgets the replies read so far (the next request on this connection starts afresh). */
  clear(): void {
    this.raw = Buffer.alloc(0);
  }

  startChunked(path: string): void {
    this.socket.write(`POST ${path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`);
  }

  chunk(text: string): void {
    this.socket.write(`${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`);
  }

  endBody(): void {
    this.socket.write('0\r\n\r\n');
  }

  /** The reply so far: its head (once whole), its decoded chunked body, and whether the last chunk came. */
  reply(): { head: string | undefined; body: string; complete: boolean } {
    const text = this.raw.toString('latin1');
    const headEnd = text.indexOf('\r\n\r\n');
    if (headEnd === -1) return { head: undefined, body: '', complete: false };
    const head = text.slice(0, headEnd);
    if (!/transfer-encoding: chunked/i.test(head)) {
      const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
      const body = text.slice(headEnd + 4);
      return { head, body: Buffer.from(body, 'latin1').toString('utf8'), complete: body.length >= length };
    }
    let at = headEnd + 4;
    let body = '';
    for (;;) {
      const lineEnd = text.indexOf('\r\n', at);
      if (lineEnd === -1) return { head, body, complete: false };
      const size = parseInt(text.slice(at, lineEnd), 16);
      if (size === 0) return { head, body: Buffer.from(body, 'latin1').toString('utf8'), complete: true };
      if (text.length < lineEnd + 2 + size + 2) return { head, body: Buffer.from(body, 'latin1').toString('utf8'), complete: false };
      body += text.slice(lineEnd + 2, lineEnd + 2 + size);
      at = lineEnd + 2 + size + 2;
    }
  }

  lines(): string[] {
    return this.reply().body.split('\n').filter((l) => l !== '');
  }
}

const echo = (value: string): string => JSON.stringify({ key: b64('echo'), value: b64(value) });
const valueOf = (line: string): string => Buffer.from(JSON.parse(line).result.kvs[0].value, 'base64').toString();

test('JSON sequence: values split anywhere, with or without white space between; strings with braces and escapes', () => {
  const reader = new JsonSequenceReader(1024);
  const text = '{"a":"}{\\"x"} {"b":[1,{"c":2}]}\n\n{"d":3}{"e":4} true 12 "s}"';
  const values: string[] = [];
  for (let i = 0; i < text.length; i += 3) for (const v of reader.push(Buffer.from(text.slice(i, i + 3)))) values.push(v.toString());
  for (const v of reader.end()) values.push(v.toString());
  assert.equal(values, ['{"a":"}{\\"x"}', '{"b":[1,{"c":2}]}', '{"d":3}', '{"e":4}', 'true', '12', '"s}"']);
  const bounded = new JsonSequenceReader(8);
  assert.throws(() => bounded.push(Buffer.from('{"long":"0123456789"')));
  const unfinished = new JsonSequenceReader(64);
  assert.equal(unfinished.push(Buffer.from('{"a":1} {"b":')).map(String), ['{"a":1}']);
  assert.equal(unfinished.end().map(String), ['{"b":'], 'an open value is handed over for its parser to refuse');
});

test('bidi over a chunked body: each request answered by a {"result"} line as it arrives; ending the body half-closes', async () => {
  const c = new StreamingClient(running.server.port);
  c.startChunked('/v3/test/echo/chat');
  c.chunk(echo('one') + '\n');
  await until(() => c.lines().length === 1, () => `the first line, got ${JSON.stringify(c.reply())}`);
  const { head } = c.reply();
  assert.match(head!, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(head!, /\r\nTransfer-Encoding: chunked/i);
  assert.match(head!, /\r\nContent-Type: application\/json/i);
  assert.match(head!, /\r\nAccess-Control-Allow-Origin: \*/i);
  // Two requests with nothing between them, the second split over two chunks.
  const two = echo('two') + echo('three');
  c.chunk(two.slice(0, 20));
  c.chunk(two.slice(20));
  await until(() => c.lines().length === 3, () => `three lines, got ${JSON.stringify(c.reply())}`);
  assert.is(c.reply().complete, false, 'the reply stays open while the body does');
  c.endBody();
  await until(() => c.reply().complete, () => `the end of the reply, got ${JSON.stringify(c.reply())}`);
  const lines = c.lines();
  assert.equal(lines.map(valueOf), ['one', 'two', 'three']);
  for (const line of lines) assert.match(line, /^\{"result":\{"header":\{/);
  assert.is(c.reply().body.endsWith('\n'), true);
  assert.is(probe.halfCloses, 1);
  assert.is(probe.cancels, 0);
});

test('an error ends the reply with grpc-gateway\'s error line after the results', async () => {
  const c = new StreamingClient(running.server.port);
  c.startChunked('/v3/test/echo/chat');
  c.chunk(echo('before') + JSON.stringify({ key: b64('fail') }));
  await until(() => c.reply().complete, () => `the end of the reply, got ${JSON.stringify(c.reply())}`);
  const body = c.reply().body;
  const [first, last] = body.split('\n');
  assert.is(valueOf(first!), 'before');
  assert.is(last, '{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}}');
});

test('an error before any result sets the HTTP status too', async () => {
  const c = new StreamingClient(running.server.port);
  c.startChunked('/v3/test/echo/chat');
  c.chunk(JSON.stringify({ key: b64('fail') }));
  await until(() => c.reply().complete, () => `the end of the reply, got ${JSON.stringify(c.reply())}`);
  assert.match(c.reply().head!, /^HTTP\/1\.1 503 /);
  assert.is(c.reply().body, '{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}}');
});

test('a first request that does not parse: 500 and grpc-gateway\'s plain error, as etcd answers `{bad` on /v3/watch', async () => {
  const reply = await httpRequest(running.server.port, 'POST', '/v3/test/echo/chat', '{bad');
  assert.is(reply.status, 500);
  assert.equal(JSON.parse(reply.body), {
    error: "invalid character 'b' looking for beginning of object key string",
    message: "invalid character 'b' looking for beginning of object key string",
    code: 2,
  });
  assert.is(probe.messages, 0);
});

test('a later request that does not parse (found when the body ends) ends the request side; the reply ends with the call', async () => {
  const c = new StreamingClient(running.server.port);
  c.startChunked('/v3/test/echo/chat');
  c.chunk(echo('fine') + '{"key":[}');
  c.endBody();
  await until(() => c.reply().complete, () => `the end of the reply, got ${JSON.stringify(c.reply())}`);
  assert.equal(c.lines().map(valueOf), ['fine']);
  assert.is(probe.halfCloses, 1);
});

test('server-stream over a plain body: one request, every response a line, then the end', async () => {
  const reply = await httpRequest(running.server.port, 'POST', '/v3/test/echo/count', JSON.stringify({ value: b64('5') }));
  assert.is(reply.status, 200);
  assert.is(reply.headers['transfer-encoding'], 'chunked');
  const keys = reply.body.split('\n').filter((l) => l !== '').map((l) => Buffer.from(JSON.parse(l).result.kvs[0].key, 'base64').toString());
  assert.equal(keys, ['count/0', 'count/1', 'count/2', 'count/3', 'count/4']);
  const metrics = await running.registry.metrics();
  assert.match(metrics, 'grpc_server_handled_total{grpc_type="server_stream",grpc_service="etcdserverpb.Echo",grpc_method="Count",grpc_code="OK"} 1');
});

test('a client that goes away cancels the call', async () => {
  const c = new StreamingClient(running.server.port);
  c.startChunked('/v3/test/echo/chat');
  c.chunk(echo('x'));
  await until(() => c.lines().length === 1, () => 'the echo');
  c.socket.destroy();
  await until(() => probe.cancels === 1, () => `the cancel (cancels ${probe.cancels})`);
});

test('Grpc-Metadata-* headers reach the handler as metadata', async () => {
  const c = new StreamingClient(running.server.port);
  c.socket.write('POST /v3/test/echo/chat HTTP/1.1\r\nHost: test\r\nGrpc-Metadata-X-Probe: yes\r\nContent-Length: 0\r\n\r\n');
  await until(() => c.reply().complete, () => `the reply, got ${JSON.stringify(c.reply())}`);
  assert.is(probe.lastMetadata?.get('x-probe'), 'yes');
});

test('one keep-alive connection: a fast-path put, then a streaming call (handed to node:http), then another request', async () => {
  const c = new StreamingClient(running.server.port);
  const put = JSON.stringify({ key: b64('k'), value: b64('v') });
  c.socket.write(`POST /v3/kv/put HTTP/1.1\r\nHost: test\r\nContent-Length: ${put.length}\r\n\r\n${put}`);
  await until(() => c.reply().complete, () => `the put reply, got ${JSON.stringify(c.reply())}`);
  assert.match(c.reply().head!, /^HTTP\/1\.1 200 /);
  c.clear();
  c.startChunked('/v3/test/echo/chat');
  c.chunk(echo('after'));
  c.endBody();
  await until(() => c.reply().complete, () => `the streaming reply, got ${JSON.stringify(c.reply())}`);
  assert.equal(c.lines().map(valueOf), ['after']);
  c.clear();
  c.socket.write(`POST /v3/kv/put HTTP/1.1\r\nHost: test\r\nContent-Length: ${put.length}\r\n\r\n${put}`);
  await until(() => c.reply().complete, () => `the second put reply, got ${JSON.stringify(c.reply())}`);
  assert.match(c.reply().head!, /^HTTP\/1\.1 200 /);
  assert.is(c.closed, false);
});

test.run();
