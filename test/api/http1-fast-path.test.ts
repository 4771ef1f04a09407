/**
 * The HTTP/1.1 fast path on the wire: pipelining, requests split into tiny writes, Connection:
 * close, and hand-over to node:http for what the fast path does not read itself (chunked bodies,
 * HTTP/1.0, other paths), in the middle of a keep-alive connection too.
 */
import { connect, type Socket } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { b64, startWithMemoryMember, type Running } from './helpers.js';

let running: Running;

test.before(async () => {
  running = await startWithMemoryMember();
});

test.after(async () => {
  await running.server.close();
});

interface RawResponse {
  status: number;
  headers: Map<string, string>;
  body: string;
}

/** Reads `count` HTTP/1.1 responses (Content-Length or chunked bodies) from a socket. */
function readResponses(socket: Socket, count: number): Promise<RawResponse[]> {
  return new Promise((resolve, reject) => {
    let data = Buffer.alloc(0);
    const out: RawResponse[] = [];
    const parse = (): void => {
      for (;;) {
        const headEnd = data.indexOf('\r\n\r\n');
        if (headEnd === -1) return;
        const lines = data.toString('latin1', 0, headEnd).split('\r\n');
        const status = Number(lines[0]!.split(' ')[1]);
        const headers = new Map(lines.slice(1).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
        let body: string;
        let used: number;
        if (headers.get('transfer-encoding') === 'chunked') {
          let at = headEnd + 4;
          body = '';
          for (;;) {
            const sizeEnd = data.indexOf('\r\n', at);
            if (sizeEnd === -1) return;
            const size = parseInt(data.toString('latin1', at, sizeEnd), 16);
            if (data.length < sizeEnd + 2 + size + 2) return;
            body += data.toString('utf8', sizeEnd + 2, sizeEnd + 2 + size);
            at = sizeEnd + 2 + size + 2;
            if (size === 0) break;
          }
          used = at;
        } else {
          const length = Number(headers.get('content-length') ?? 0);
          if (data.length < headEnd + 4 + length) return;
          body = data.toString('utf8', headEnd + 4, headEnd + 4 + length);
          used = headEnd + 4 + length;
        }
        out.push({ status, headers, body });
        data = data.subarray(used);
        if (out.length === count) {
          socket.off('data', onData);
          resolve(out);
          return;
        }
      }
    };
    const onData = (chunk: Buffer): void => {
      data = Buffer.concat([data, chunk]);
      parse();
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('close', () => (out.length < count ? reject(new Error(`connection closed after ${out.length} of ${count} responses`)) : undefined));
  });
}

function open(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(running.server.port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

function post(path: string, body: string, extra = ''): string {
  return `POST ${path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n${extra}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

test('pipelined requests are answered in order on one connection', async () => {
  const socket = await open();
  try {
    const requests = [1, 2, 3, 4, 5].map((i) => post('/v3/kv/put', JSON.stringify({ key: b64(`pipe/${i}`), value: b64(String(i)) })));
    requests.push(post('/v3/kv/range', JSON.stringify({ key: b64('pipe/'), range_end: b64('pipe0') })));
    const replies = readResponses(socket, requests.length);
    socket.write(requests.join(''));
    const got = await replies;
    const revisions = got.slice(0, 5).map((r) => Number(JSON.parse(r.body).header.revision));
    assert.equal(revisions, [...revisions].sort((a, b) => a - b));
    assert.is(new Set(revisions).size, 5);
    assert.is(JSON.parse(got[5]!.body).count, '5');
    for (const r of got) {
      assert.is(r.status, 200);
      assert.is(r.headers.get('content-type'), 'application/json');
      assert.is(r.headers.get('access-control-allow-origin'), '*');
      assert.ok(r.headers.get('date'));
    }
  } finally {
    socket.destroy();
  }
});

test('a request written a few bytes at a time is read whole', async () => {
  const socket = await open();
  try {
    const request = Buffer.from(post('/v3/kv/put', JSON.stringify({ key: b64('slow'), value: b64('drip') })));
    const replies = readResponses(socket, 1);
    for (let i = 0; i < request.length; i += 7) {
      socket.write(request.subarray(i, i + 7));
      await new Promise((r) => setImmediate(r));
    }
    const [reply] = await replies;
    assert.is(reply!.status, 200);
    assert.is(running.member.data.get('slow')?.value.toString(), 'drip');
  } finally {
    socket.destroy();
  }
});

test('Connection: close is honoured', async () => {
  const socket = await open();
  try {
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const replies = readResponses(socket, 1);
    socket.write(post('/v3/kv/range', JSON.stringify({ key: b64('slow') }), 'Connection: close\r\n'));
    const [reply] = await replies;
    assert.is(reply!.headers.get('connection'), 'close');
    await closed;
  } finally {
    socket.destroy();
  }
});

test('mid-connection hand-over to node:http: chunked body, GET, then fast-path requests again', async () => {
  const socket = await open();
  try {
    const body = JSON.stringify({ key: b64('chunked'), value: b64('yes') });
    const chunked = `POST /v3/kv/put HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;
    const replies = readResponses(socket, 4);
    socket.write(post('/v3/kv/range', JSON.stringify({ key: b64('slow') })) + chunked + 'GET /health HTTP/1.1\r\nHost: t\r\n\r\n'
      + post('/v3/kv/range', JSON.stringify({ key: b64('chunked') })));
    const got = await replies;
    assert.equal(got.map((r) => r.status), [200, 200, 200, 200]);
    assert.is(got[2]!.body, '{"health":"true"}');
    assert.is(Buffer.from(JSON.parse(got[3]!.body).kvs[0].value, 'base64').toString(), 'yes');
  } finally {
    socket.destroy();
  }
});

test('an HTTP/1.1 request without Host gets node:http\'s 400, as Go\'s server answers', async () => {
  const socket = await open();
  try {
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    const body = JSON.stringify({ key: b64('slow') });
    socket.write(`POST /v3/kv/range HTTP/1.1\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    await closed;
    assert.match(text, /^HTTP\/1\.1 400 /);
  } finally {
    socket.destroy();
  }
});

test('bare-LF line endings are node:http\'s to answer', async () => {
  const socket = await open();
  try {
    const body = JSON.stringify({ key: b64('slow') });
    let text = '';
    const answered = new Promise<void>((resolve) => {
      socket.on('data', (d: Buffer) => {
        text += d.toString('latin1');
        if (text.includes('\r\n\r\n')) resolve();
      });
      socket.once('close', () => resolve());
    });
    socket.write(`POST /v3/kv/range HTTP/1.1\nHost: t\nContent-Length: ${body.length}\n\n${body}`);
    await answered;
    // Whatever node decides (it serves or refuses such a request), an answer comes back.
    assert.match(text, /^HTTP\/1\.1 (200|400) /);
  } finally {
    socket.destroy();
  }
});

test('HTTP/1.0 and unknown paths are node:http\'s to answer', async () => {
  const socket = await open();
  try {
    const replies = readResponses(socket, 1);
    const body = JSON.stringify({ key: b64('slow') });
    socket.write(`POST /v3/kv/range HTTP/1.0\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    const [reply] = await replies;
    assert.is(reply!.status, 200);
    assert.is(JSON.parse(reply!.body).count, '1');
  } finally {
    socket.destroy();
  }
  const other = await open();
  try {
    const replies = readResponses(other, 1);
    other.write(post('/v3/kv/nowhere', '{}'));
    const [reply] = await replies;
    assert.is(reply!.status, 404);
    assert.is(reply!.body, 'Not Found\n');
  } finally {
    other.destroy();
  }
});

test.run();
