/**
 * Restart safety of a state image install: the WAL's snapshot marker is written before the image
 * is installed (raft-node.ts), so a crash in between leaves a backend behind the marker. Start-up
 * then installs the image kept in member/snap again; without that image it refuses to start.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { readAppliedIndex } from '../../src/mvcc/kv-store.js';
import { silentLogger } from '../../src/platform/logger.js';
import { parseConfig } from '../../src/server/config.js';
import { Member } from '../../src/server/member.js';
import { Backend } from '../../src/storage/backend.js';
import { writeStateImage } from '../../src/storage/state-image.js';
import { Wal } from '../../src/storage/wal.js';

async function leaderOf(member: Member): Promise<Member> {
  for (let i = 0; i < 2000 && !member.hasLeader(); i++) await new Promise((r) => setTimeout(r, 5));
  return member;
}

function configFor(dir: string) {
  const parsed = parseConfig(['--data-dir', dir, '--snapshot-count', '100000']);
  if (parsed.kind !== 'run') throw new Error('config');
  return parsed.config;
}

test('a backend behind the WAL snapshot marker is rebuilt from the kept image at start-up', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'keyraft-reinstall-'));
  const memberDir = join(dir, 'member');
  try {
    const config = configFor(dir);
    const first = await leaderOf(await Member.start(config, { logger: silentLogger }));
    for (let i = 0; i < 500; i++) await first.put({ key: Buffer.from(`k${i}`), value: Buffer.from(`v${i}`) });
    const status = await first.status();
    const index = status.raftAppliedIndex;
    const term = status.raftTerm;
    const memberId = first.memberId;
    await first.close();

    // The image a leader would have sent, at the backend's applied index.
    const backend = await Backend.open(join(memberDir, 'db'), { logger: silentLogger });
    const image = join(memberDir, 'snap', `${index.toString(16).padStart(16, '0')}.krimg`);
    const written = await writeStateImage(backend, image, {
      appliedIndex: (r) => readAppliedIndex((b, k) => r.get(b, k)),
      describe: () => ({ term, voters: [memberId], learners: [] }),
    });
    await backend.close();
    assert.is(written.header.index, index);
    // The crash: the marker is durable, the old backend is gone (between the renames of the swap).
    const { wal } = await Wal.open(join(memberDir, 'wal'), { logger: silentLogger, metrics: new Registry() });
    await wal.appendSnapshotMarker({ index, term, voters: [memberId], learners: [] });
    await wal.close();
    await rm(join(memberDir, 'db'), { recursive: true });

    const second = await leaderOf(await Member.start(config, { logger: silentLogger }));
    try {
      const all = await second.range({ key: Buffer.from([0]), range_end: Buffer.from([0]), serializable: true });
      assert.is(all.kvs?.length, 500);
      assert.is((await second.status()).raftAppliedIndex >= index, true);
      await second.put({ key: Buffer.from('after'), value: Buffer.from('x') });
    } finally {
      await second.close();
    }

    // Same crash without the image: start-up refuses with a clear reason instead of serving nothing.
    const { wal: wal2 } = await Wal.open(join(memberDir, 'wal'), { logger: silentLogger, metrics: new Registry() });
    const later = index + 2;
    await wal2.appendSnapshotMarker({ index: later, term, voters: [memberId], learners: [] });
    await wal2.close();
    await rm(join(memberDir, 'db'), { recursive: true });
    for (const name of await readdir(join(memberDir, 'snap'))) await rm(join(memberDir, 'snap', name));
    const err = await Member.start(config, { logger: silentLogger }).then(async (m) => { await m.close(); return null; }, (e: Error) => e);
    assert.ok(err !== null, 'start-up refused');
    assert.match(err!.message, /behind the WAL's snapshot at \d+, and the state image for it is missing/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
