/**
 * Hostile HTTP/1.1 clients on the fast path (issue 9): request smuggling through odd line endings,
 * trickled heads and bodies (slowloris), and a request followed at once by the client's FIN.
 */
import { connect, type Socket } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { b64, startWithMemoryMember, worstHealthLatency, type Running } from './helpers.js';
import { silentLogger } from '../../src/platform/logger.js';

/** Deadlines short enough for a test; the defaults are Limits.httpHeadTimeoutMs and httpBodyIdleTimeoutMs. */
const headMs = 400;
const bodyIdleMs = 400;

let running: Running;

test.before(async () => {
  running = await startWithMemoryMember({}, silentLogger, { httpHeadTimeoutMs: headMs, httpBodyIdleTimeoutMs: bodyIdleMs });
});

test.after(async () => {
  await running.server.close();
});

function open(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(running.server.port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Writes `bytes` and collects everything the server sends until it closes the connection. */
async function exchange(bytes: string | Buffer, halfClose = false): Promise<string> {
  const socket = await open();
  return new Promise((resolve) => {
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('error', () => undefined);
    socket.once('close', () => resolve(text));
    socket.write(bytes);
    if (halfClose) socket.end();
    // Without a FIN, the server's answer and close (400s close) end the exchange.
    else setTimeout(() => socket.end(), 1500).unref();
  });
}

const putBody = (key: string): string => JSON.stringify({ key: b64(key), value: b64('smuggled') });

test('a Content-Length hidden behind a bare LF, a lone CR or a NUL is not read past: 400, and the hidden request never runs', async () => {
  for (const [name, separator] of [['bare LF', '\n'], ['lone CR', '\r'], ['NUL', '\0']] as const) {
    const key = `smuggle/${name}`;
    const hidden = `POST /v3/kv/put HTTP/1.1\r\nHost: t\r\nContent-Length: ${putBody(key).length}\r\n\r\n${putBody(key)}`;
    const first = `POST /v3/kv/range HTTP/1.1\r\nHost: t\r\nX-A: a${separator}Content-Length: ${hidden.length}\r\n\r\n`;
    const text = await exchange(first + hidden);
    assert.match(text, /^HTTP\/1\.1 400 /, `${name}: ${JSON.stringify(text)}`);
    assert.is(text.match(/HTTP\/1\.1 /g)!.length, 1, `${name}: one answer only`);
    assert.not.ok(running.member.data.has(key), `${name}: the hidden put was applied`);
  }
});

test('a request followed at once by the client\'s FIN is answered, then the connection ends', async () => {
  // A real member answers a write after its WAL sync, well after the FIN has arrived.
  const member = running.member;
  const put = member.put.bind(member);
  const range = member.range.bind(member);
  member.put = (r) => new Promise((resolve) => setTimeout(resolve, 30)).then(() => put(r));
  member.range = (r) => new Promise((resolve) => setTimeout(resolve, 30)).then(() => range(r));
  const body = putBody('half-closed');
  const text = await exchange(`POST /v3/kv/put HTTP/1.1\r\nHost: t\r\nContent-Length: ${body.length}\r\n\r\n${body}`, true);
  assert.match(text, /^HTTP\/1\.1 200 /);
  assert.ok(running.member.data.has('half-closed'));
  // Pipelined requests before the FIN are all answered.
  const two = `POST /v3/kv/range HTTP/1.1\r\nHost: t\r\nContent-Length: ${body.length}\r\n\r\n${body}`.repeat(2);
  assert.is((await exchange(two, true)).match(/HTTP\/1\.1 200 /g)?.length, 2);
  // An incomplete request before the FIN can never complete: the connection just ends.
  assert.is(await exchange('POST /v3/kv/range HTTP/1.1\r\nHost: t\r\nContent-Length: 50\r\n\r\n{', true), '');
  member.put = put;
  member.range = range;
});

/** Opens a connection that writes `bytes` one byte every `everyMs` and never finishes. */
async function trickle(bytes: string, everyMs: number): Promise<{ closed: Promise<string>; stop(): void }> {
  const socket = await open();
  let at = 0;
  let text = '';
  socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
  socket.on('error', () => undefined);
  const timer = setInterval(() => {
    if (at < bytes.length && socket.writable) socket.write(bytes[at++]!);
  }, everyMs);
  const closed = new Promise<string>((resolve) => socket.once('close', () => {
    clearInterval(timer);
    resolve(text);
  }));
  return { closed, stop: () => { clearInterval(timer); socket.destroy(); } };
}

/** Opens a connection that writes `bytes` at once and then nothing more. */
async function stall(bytes: string): Promise<{ closed: Promise<string>; stop(): void }> {
  const socket = await open();
  let text = '';
  socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
  socket.on('error', () => undefined);
  socket.write(bytes);
  return { closed: new Promise<string>((resolve) => socket.once('close', () => resolve(text))), stop: () => socket.destroy() };
}

test('slowloris: 200 trickled heads and 50 stalled bodies get 408 and are closed after the deadlines; /health answers meanwhile', async () => {
  const body = putBody('slow/body');
  const head = `POST /v3/kv/put HTTP/1.1\r\nHost: t\r\nContent-Length: ${body.length}\r\n\r\n`;
  const clients: Array<{ closed: Promise<string>; stop(): void }> = [];
  try {
    const { result, worstMs } = await worstHealthLatency(running.server.port, async () => {
      // A byte every 50 ms: the head alone would take ~4 s, ten head deadlines.
      for (let i = 0; i < 200; i++) clients.push(await trickle(head + body, 50));
      // A whole head, then a body that stops after its first byte.
      for (let i = 0; i < 50; i++) clients.push(await stall(head + body.slice(0, 1)));
      // Wait for the server to close them all, or give up well past the deadlines.
      const late = new Promise<'late'>((resolve) => setTimeout(() => resolve('late'), 20 * Math.max(headMs, bodyIdleMs)).unref());
      return Promise.race([Promise.all(clients.map((c) => c.closed)), late]);
    });
    assert.ok(result !== 'late', 'trickling connections still open long after the deadlines');
    for (const text of result as string[]) assert.match(text, /^HTTP\/1\.1 408 /);
    console.log(`  slowloris: worst /health ${worstMs.toFixed(0)} ms`);
    assert.ok(worstMs < 1000, `worst /health ${worstMs.toFixed(0)} ms`);
    assert.not.ok(running.member.data.has('slow/body'));
  } finally {
    for (const c of clients) c.stop();
  }
});

test('a body that keeps moving is not cut off by the idle bound', async () => {
  const body = putBody('slow/but/moving');
  const request = `POST /v3/kv/put HTTP/1.1\r\nHost: t\r\nContent-Length: ${body.length}\r\n\r\n`;
  const socket = await open();
  try {
    let text = '';
    const answered = new Promise<void>((resolve) => socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (text.includes('\r\n\r\n')) resolve();
    }));
    socket.write(request);
    // The whole body takes several idle bounds, but no gap is longer than a quarter of one.
    for (const ch of body) {
      socket.write(ch);
      await new Promise((r) => setTimeout(r, bodyIdleMs / 4 / 8));
    }
    await answered;
    assert.match(text, /^HTTP\/1\.1 200 /);
  } finally {
    socket.destroy();
  }
});

test.run();
