import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { FaultProxy } from './fault-proxy.js';
import { freePort } from '../integration/harness.js';
import { waitFor } from '../peer/peer-test-helpers.js';

/**
 * The fault proxy between a test client and an echo server standing in for a member's peer port.
 * Absence of bytes cannot be waited for, so the two blackhole checks give bytes a fixed window
 * (absenceWindowMs) to show up wrongly; everything else waits on conditions.
 */
const absenceWindowMs = 150;

interface Echo { server: Server; port: number; received: () => string; connections: () => number; close: () => Promise<void> }

/** Echoes every byte back and remembers what it got and how many connections it accepted. */
async function startEcho(): Promise<Echo> {
  let received = '';
  let connections = 0;
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => { /* resets are the point of these tests */ });
    socket.on('data', (d) => { received += d.toString('latin1'); socket.write(d); });
    socket.on('end', () => socket.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    server, port,
    received: () => received,
    connections: () => connections,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

interface Client { socket: Socket; data: () => string; closed: () => boolean; error: () => string | undefined }

function startClient(port: number): Client {
  let data = '';
  let closed = false;
  let error: string | undefined;
  const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  socket.on('data', (d) => { data += d.toString('latin1'); });
  socket.on('error', (e: NodeJS.ErrnoException) => { error = e.code ?? e.message; });
  socket.on('close', () => { closed = true; });
  return { socket, data: () => data, closed: () => closed, error: () => error };
}

function absenceWindow(): Promise<void> {
  return new Promise((r) => setTimeout(r, absenceWindowMs));
}

test('bytes pass both ways, a megabyte too (backpressure), and a FIN is passed on', async () => {
  const echo = await startEcho();
  const proxy = await FaultProxy.start({ targetPort: echo.port });
  try {
    const c = startClient(proxy.port);
    c.socket.write('hello');
    await waitFor(() => c.data() === 'hello', 'echo of hello');
    const big = Buffer.alloc(1 << 20, 'x');
    big.write('start');
    big.write('end', big.length - 3);
    c.socket.write(big);
    await waitFor(() => c.data().length === 5 + big.length, `a megabyte back (${c.data().length})`);
    assert.ok(c.data().endsWith('end'));
    c.socket.end();
    // The echo server ends its side on our FIN, which comes back through the proxy.
    await waitFor(() => c.closed(), 'close after both FINs');
    assert.is(c.error(), undefined);
    assert.is(proxy.stats.accepted, 1);
    await waitFor(() => proxy.connectionCount === 0, 'pair gone after both ends closed');
  } finally {
    await proxy.close();
    await echo.close();
  }
});

test("block (reset) cuts live connections; new ones carry nothing; heal restores", async () => {
  const echo = await startEcho();
  const proxy = await FaultProxy.start({ targetPort: echo.port });
  try {
    const before = startClient(proxy.port);
    before.socket.write('a');
    await waitFor(() => before.data() === 'a', 'echo before the block');
    proxy.block();
    assert.is(proxy.state, 'reset');
    await waitFor(() => before.closed(), 'live connection cut');
    assert.is(before.error(), 'ECONNRESET');

    const during = startClient(proxy.port);
    during.socket.write('b');
    await waitFor(() => during.closed(), 'new connection reset on accept');
    assert.is(during.data(), '');
    assert.is(proxy.stats.refused, 1);
    assert.is(echo.connections(), 1, 'nothing reached the target during the block');
    assert.is(echo.received(), 'a');

    proxy.heal();
    assert.is(proxy.state, 'open');
    const after = startClient(proxy.port);
    after.socket.write('c');
    await waitFor(() => after.data() === 'c', 'echo after heal');
    after.socket.destroy();
  } finally {
    await proxy.close();
    await echo.close();
  }
});

test('block (blackhole) stalls bytes both ways without closing; heal delivers them', async () => {
  const echo = await startEcho();
  const proxy = await FaultProxy.start({ targetPort: echo.port });
  try {
    const live = startClient(proxy.port);
    live.socket.write('1');
    await waitFor(() => live.data() === '1', 'echo before the blackhole');
    proxy.block('blackhole');
    live.socket.write('2');
    const fresh = startClient(proxy.port);
    fresh.socket.write('3');
    await absenceWindow();
    assert.is(echo.received(), '1', 'no byte crossed the blackhole');
    assert.is(echo.connections(), 1, 'the new connection was not carried onward');
    assert.is(live.closed(), false);
    assert.is(fresh.closed(), false);
    assert.is(proxy.connectionCount, 2);

    proxy.heal();
    await waitFor(() => live.data() === '12', 'stalled byte delivered after heal');
    await waitFor(() => fresh.data() === '3', 'held connection carried after heal');
    assert.is(echo.connections(), 2);
    live.socket.destroy();
    fresh.socket.destroy();
  } finally {
    await proxy.close();
    await echo.close();
  }
});

test('blackhole then reset cuts the stalled connections', async () => {
  const echo = await startEcho();
  const proxy = await FaultProxy.start({ targetPort: echo.port });
  try {
    proxy.block('blackhole');
    const held = startClient(proxy.port);
    await waitFor(() => proxy.connectionCount === 1, 'connection held');
    proxy.block('reset');
    await waitFor(() => held.closed(), 'held connection reset');
    assert.is(echo.connections(), 0);
  } finally {
    await proxy.close();
    await echo.close();
  }
});

test('delay keeps byte order across delay changes', async () => {
  const echo = await startEcho();
  const proxy = await FaultProxy.start({ targetPort: echo.port });
  try {
    const c = startClient(proxy.port);
    let expected = '';
    for (let i = 0; i < 10; i++) {
      // A long delay, then none: the undelayed chunk is due at once but must still wait for the
      // delayed one before it. Waiting until the proxy has read each chunk keeps them apart.
      proxy.setDelay(i % 2 === 0 ? 30 : 0);
      const chunk = `<${i}>`;
      expected += chunk;
      c.socket.write(chunk);
      await waitFor(() => proxy.stats.receivedBytes >= 2 * expected.length - chunk.length, `chunk ${i} read by the proxy`);
    }
    await waitFor(() => c.data() === expected, `all chunks back in order (${c.data()})`);
    assert.is(echo.received(), expected);
    assert.throws(() => proxy.setDelay(-1), /delay/);
    c.socket.destroy();
  } finally {
    await proxy.close();
    await echo.close();
  }
});

test('a target that is down resets the client', async () => {
  const proxy = await FaultProxy.start({ targetPort: await freePort() });
  try {
    const c = startClient(proxy.port);
    await waitFor(() => c.closed(), 'client reset');
    assert.is(c.data(), '');
  } finally {
    await proxy.close();
  }
});

test('close destroys live connections and frees the port', async () => {
  const echo = await startEcho();
  const port = await freePort();
  const proxy = await FaultProxy.start({ targetPort: echo.port, listenPort: port });
  assert.is(proxy.port, port);
  const c = startClient(proxy.port);
  c.socket.write('x');
  await waitFor(() => c.data() === 'x', 'echo');
  await proxy.close();
  await waitFor(() => c.closed(), 'client closed by proxy close');
  await proxy.close(); // twice is harmless
  // The port is free again: a new listener (here a second proxy) can take it.
  const again = await FaultProxy.start({ targetPort: echo.port, listenPort: port });
  await again.close();
  await echo.close();
});

test('nothing is left open: no TCP handle survives the suite', async () => {
  // Every test above closed its proxies and servers; had any socket or listener leaked, it
  // would show here (and keep the process from exiting).
  const tcp = () => process.getActiveResourcesInfo().filter((r) => r.startsWith('TCP'));
  await waitFor(() => tcp().length === 0, `TCP handles released (${tcp().join(', ')})`);
});

test.run();
