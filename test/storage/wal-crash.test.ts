import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Wal, type WalEntry } from '../../src/storage/wal.js';

// Crash test: a child process appends in a loop and prints each acknowledged index; the parent
// kills it with SIGKILL mid-stream, reopens the WAL and checks that every acknowledged index is
// there, with its bytes. The child is this same file, started with KEYRAFT_WAL_CRASH_DIR set.
// (SIGKILL loses the process, not the page cache: this proves we never ack before the write,
// and that replay copes with whatever state the writer was in; power loss is wal-recovery's
// torn-tail cases.)

const segmentSizeBytes = 32 * 1024;
const childDirEnv = 'KEYRAFT_WAL_CRASH_DIR';

function dataFor(index: number, term: number): Buffer {
  const bytes = 20 + (index % 7) * 30;
  const data = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) data[i] = (index + term * 17 + i * 3) & 0xff;
  return data;
}

async function runChild(dir: string): Promise<void> {
  const { wal, replay } = await Wal.open(dir, { segmentSizeBytes });
  const last = replay.entries[replay.entries.length - 1];
  let nextIndex = last ? last.index + 1 : replay.firstIndex;
  const term = (replay.hardState?.term ?? 0) + 1;
  let released = 0;
  const inflightMax = 16;
  let inflight = 0;
  const pump = (): void => {
    while (inflight < inflightMax) {
      const count = 1 + (nextIndex % 3);
      const batch: WalEntry[] = [];
      for (let i = 0; i < count; i++, nextIndex++) batch.push({ index: nextIndex, term, type: 0, data: dataFor(nextIndex, term) });
      const lastOfBatch = nextIndex - 1;
      inflight++;
      wal.append(batch, { term, vote: 1n, commit: lastOfBatch }).then(() => {
        inflight--;
        // Synchronous on a pipe: once written, the parent will see it even after SIGKILL.
        process.stdout.write(`${lastOfBatch}\n`);
        if (lastOfBatch - released > 400) {
          released = lastOfBatch - 200;
          void wal.releaseTo(released);
        }
        pump();
      }, (err: Error) => {
        process.stderr.write(`append failed: ${err.stack}\n`);
        process.exit(2);
      });
    }
  };
  pump();
}

function waitForExit(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

/** Starts the child, waits for `acks` acknowledgements, SIGKILLs it; returns the acked indexes. */
async function crashRound(dir: string, acks: number): Promise<number[]> {
  const child = spawn(process.execPath, [__filename], {
    env: { ...process.env, [childDirEnv]: dir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const acked: number[] = [];
  let stderr = '';
  try {
    await new Promise<void>((resolve, reject) => {
      let partial = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        const lines = (partial + chunk.toString()).split('\n');
        partial = lines.pop()!;
        for (const line of lines) acked.push(Number(line));
        if (acked.length >= acks) resolve();
      });
      child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
      child.once('exit', (code, signal) => reject(new Error(`child exited early (${code ?? signal}): ${stderr}`)));
    });
    child.kill('SIGKILL');
    await waitForExit(child);
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await waitForExit(child);
    }
  }
  return acked;
}

if (process.env[childDirEnv]) {
  runChild(process.env[childDirEnv]!).catch((err: Error) => {
    process.stderr.write(`child failed: ${err.stack}\n`);
    process.exit(1);
  });
} else {
  test('every index acknowledged before a SIGKILL is replayed, across repeated crashes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'keyraft-wal-crash-'));
    try {
      let previousMax = 0;
      for (let round = 1; round <= 3; round++) {
        const acked = await crashRound(dir, 150 + round * 50);
        const maxAcked = Math.max(...acked);
        assert.ok(maxAcked > previousMax, `round ${round}: progress after restart`);
        const { wal, replay } = await Wal.open(dir, { segmentSizeBytes });
        await wal.close();
        const byIndex = new Map(replay.entries.map((e) => [e.index, e]));
        const last = replay.entries[replay.entries.length - 1]!;
        assert.ok(last.index >= maxAcked, `round ${round}: log ends at ${last.index}, ${maxAcked} was acked`);
        for (const index of acked) {
          if (index < replay.firstIndex) continue; // released: durable elsewhere by contract
          const e = byIndex.get(index);
          assert.ok(e, `round ${round}: acked index ${index} missing (log ${replay.firstIndex}..${last.index})`);
          assert.ok(Buffer.from(e.data).equals(dataFor(index, e.term)), `round ${round}: data of index ${index}`);
        }
        // Releases keep at least the last 200 acked entries.
        assert.ok(replay.firstIndex <= maxAcked - 150, `round ${round}: firstIndex ${replay.firstIndex}`);
        assert.equal(replay.hardState?.term, round, `round ${round}: hard state term`);
        previousMax = maxAcked;
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test.run();
}
