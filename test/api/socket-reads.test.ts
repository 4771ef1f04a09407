/**
 * Socket reads into one shared buffer (http/socket-reads.ts): on an accepted socket the shared
 * path is taken, every byte arrives once and in order, and what a consumer keeps of one read is
 * not overwritten by the next (every socket reads into the same buffer, so each read must be copied
 * out). Pause stops the handle's reads and resume starts them again. A socket that cannot take the
 * shared buffer (a stand-in) is left to 'data'.
 */
import { EventEmitter } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readIntoSharedBuffer } from '../../src/http/socket-reads.js';

interface Pair {
  server: Server;
  accepted: Socket;
  client: Socket;
}

async function socketPair(): Promise<Pair> {
  let onAccepted!: (socket: Socket) => void;
  const acceptedPromise = new Promise<Socket>((resolve) => (onAccepted = resolve));
  const server = createServer({ pauseOnConnect: true }, onAccepted);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const client = connect(port, '127.0.0.1');
  await new Promise<void>((resolve) => client.once('connect', resolve));
  return { server, accepted: await acceptedPromise, client };
}

async function close(pair: Pair): Promise<void> {
  pair.client.destroy();
  pair.accepted.destroy();
  await new Promise<void>((resolve) => pair.server.close(() => resolve()));
}

/** Resolves once `check` holds, polled each turn of the event loop (no fixed sleeps). */
async function until(check: () => boolean, what: string): Promise<void> {
  for (let turns = 0; !check(); turns++) {
    if (turns > 100_000) throw new Error(`never happened: ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

test('an accepted socket reads into the shared buffer; chunks kept from earlier reads stay intact', async () => {
  const pair = await socketPair();
  try {
    const kept: Buffer[] = [];
    let received = 0;
    assert.ok(readIntoSharedBuffer(pair.accepted, (chunk) => {
      kept.push(chunk);
      received += chunk.length;
    }), 'the shared-buffer path is taken on an accepted socket');
    pair.accepted.on('data', () => assert.unreachable('a read went to "data" as well'));
    pair.accepted.resume();
    // Each write differs in every byte from the one before, and is read before the next is sent:
    // had a chunk been a view of the shared buffer, the next read would overwrite it.
    const sent: Buffer[] = [];
    for (let i = 0; i < 20; i++) {
      const bytes = Buffer.alloc(100 + i * 37, i + 1);
      sent.push(bytes);
      const before = received;
      pair.client.write(bytes);
      await until(() => received === before + bytes.length, `write ${i} read`);
    }
    assert.ok(kept.length >= 20, `${kept.length} chunks for 20 writes read one at a time`);
    assert.equal(Buffer.concat(kept), Buffer.concat(sent));
  } finally {
    await close(pair);
  }
});

test('pause stops the reads of the shared-buffer path and resume starts them again', async () => {
  const pair = await socketPair();
  try {
    let received = 0;
    assert.ok(readIntoSharedBuffer(pair.accepted, (chunk) => (received += chunk.length)));
    pair.accepted.resume();
    pair.client.write(Buffer.alloc(10, 7));
    await until(() => received === 10, 'first write read');
    pair.accepted.pause();
    const handle = (pair.accepted as unknown as { _handle: { reading: boolean } })._handle;
    assert.is(handle.reading, false, 'paused: the handle no longer reads');
    pair.client.write(Buffer.alloc(20, 8));
    pair.accepted.resume();
    await until(() => received === 30, 'write after resume read');
  } finally {
    await close(pair);
  }
});

test('a stand-in socket without a handle stays on "data"', () => {
  const standIn = new EventEmitter() as unknown as Socket;
  assert.is(readIntoSharedBuffer(standIn, () => assert.unreachable('no reads')), false);
});

test.run();
