/**
 * Snapshots side by side with etcd 3.4: N keys (default 1M) of 256-byte values loaded into a
 * keyraft member and a real etcd, then per round, alternating which server goes first:
 *
 *   save     `etcdctl snapshot save` against the server (Maintenance.Snapshot): wall time, file
 *            size, MB/s, and the longest pause of a put stream (one put in flight, back to back)
 *            running against the same server meanwhile: what a snapshot costs the clients;
 *   restore  the snapshot etcd wrote, restored by `etcdctl snapshot restore` (an etcd data dir)
 *            and by `keyraftctl snapshot restore` (a keyraft data dir): wall time.
 *
 * Medians over the rounds. The machine is shared: compare only numbers from the same run.
 *
 *   node dist/bench/snapshot/snapshot-bench.js [--keys N] [--rounds R] [--smoke]
 */
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { EtcdClient } from '../../src/cli/ctl-client.js';
import { findBinary } from '../../test/etcd-binaries.js';
import { freePort, keyraftctlBin, killAll, runCommand, startEtcd, startKeyraft, tempDir, type ServerProcess } from '../../test/integration/harness.js';
import { median } from '../kv/side-by-side.js';
import { loadKeys } from '../kv/load-keys.js';

const args = process.argv.slice(2);
const smoke = args.includes('--smoke');
const flag = (name: string, dflt: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const keys = flag('--keys', smoke ? 2_000 : 1_000_000);
const rounds = flag('--rounds', smoke ? 1 : 3);
const VALUE_BYTES = 256;
const TXN_PUTS = 100;
const LOAD_CONCURRENCY = 8;

interface SaveSample { ms: number; bytes: number; maxPauseMs: number; puts: number }

/** Puts back to back until `stop` resolves; the longest time between two completions. */
async function putStream(port: number, stop: Promise<unknown>): Promise<{ maxPauseMs: number; puts: number }> {
  const client = new EtcdClient([`127.0.0.1:${port}`]);
  let done = false;
  void stop.finally(() => { done = true; });
  let last = performance.now();
  let maxPauseMs = 0;
  let puts = 0;
  try {
    while (!done) {
      await client.call('KV', 'Put', { key: Buffer.from('stream'), value: Buffer.from(String(puts)) }, { deadlineMs: Date.now() + 60_000 });
      const now = performance.now();
      maxPauseMs = Math.max(maxPauseMs, now - last);
      last = now;
      puts++;
    }
  } finally {
    client.close();
  }
  return { maxPauseMs, puts };
}

async function save(etcdctl: string, server: ServerProcess, path: string): Promise<SaveSample> {
  await rm(path, { force: true });
  const t0 = performance.now();
  const saving = runCommand(etcdctl, [`--endpoints=127.0.0.1:${server.clientPort}`, 'snapshot', 'save', path], { timeoutMs: 600_000 });
  const [result, stream] = await Promise.all([saving, putStream(server.clientPort, saving)]);
  const ms = performance.now() - t0;
  if (result.code !== 0) throw new Error(`snapshot save failed: ${result.stderr}`);
  return { ms, bytes: (await stat(path)).size, maxPauseMs: stream.maxPauseMs, puts: stream.puts };
}

async function restoreTime(command: string, argv: string[], dataDir: string): Promise<number> {
  await rm(dataDir, { recursive: true, force: true });
  const t0 = performance.now();
  const r = await runCommand(command, argv, { timeoutMs: 600_000 });
  const ms = performance.now() - t0;
  if (r.code !== 0) throw new Error(`${command} ${argv.join(' ')} failed: ${r.stderr}`);
  await rm(dataDir, { recursive: true, force: true });
  return ms;
}

async function main(): Promise<void> {
  const etcdctl = findBinary('etcdctl');
  if (findBinary('etcd') === undefined || etcdctl === undefined) throw new Error('the snapshot bench needs etcd and etcdctl 3.4');
  const dir = tempDir('snapshot-bench');
  try {
    const keyraft = await startKeyraft();
    const etcd = await startEtcd();
    const t0 = performance.now();
    const loadOptions = { keys, valueBytes: VALUE_BYTES, txnPuts: TXN_PUTS, concurrency: LOAD_CONCURRENCY, txnTimeoutMs: 60_000 };
    await Promise.all([loadKeys(keyraft.clientPort, loadOptions), loadKeys(etcd.clientPort, loadOptions)]);
    console.log(`loaded ${keys} keys x ${VALUE_BYTES} B into both in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const saves: Record<'keyraft' | 'etcd', SaveSample[]> = { keyraft: [], etcd: [] };
    const restores: Record<'etcdctl' | 'keyraftctl', number[]> = { etcdctl: [], keyraftctl: [] };
    const etcdFile = join(dir, 'etcd.db');
    const keyraftFile = join(dir, 'keyraft.db');
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? (['keyraft', 'etcd'] as const) : (['etcd', 'keyraft'] as const);
      for (const which of order) {
        saves[which].push(await save(etcdctl, which === 'etcd' ? etcd : keyraft, which === 'etcd' ? etcdFile : keyraftFile));
      }
      const peer = `http://127.0.0.1:${await freePort()}`;
      const restoreArgs = (dataDir: string) => ['snapshot', 'restore', etcdFile, '--data-dir', dataDir, '--name', 'r', '--initial-cluster', `r=${peer}`, '--initial-advertise-peer-urls', peer];
      const tools = round % 2 === 0 ? (['keyraftctl', 'etcdctl'] as const) : (['etcdctl', 'keyraftctl'] as const);
      for (const tool of tools) {
        const dataDir = join(dir, `restored-${tool}`);
        restores[tool].push(tool === 'etcdctl'
          ? await restoreTime(etcdctl, restoreArgs(dataDir), dataDir)
          : await restoreTime(process.execPath, [keyraftctlBin, ...restoreArgs(dataDir)], dataDir));
      }
    }
    console.log(`\nsnapshot save of ${keys} keys x ${VALUE_BYTES} B, medians of ${rounds} rounds (shared 2-core machine)`);
    console.log('server    save ms   file MB    MB/s  longest put pause ms  puts during save');
    for (const which of ['keyraft', 'etcd'] as const) {
      const s = saves[which];
      const ms = median(s.map((x) => x.ms));
      const mb = median(s.map((x) => x.bytes)) / 1e6;
      console.log(`${which.padEnd(8)} ${ms.toFixed(0).padStart(8)} ${mb.toFixed(1).padStart(9)} ${(mb / (ms / 1000)).toFixed(1).padStart(7)} ${median(s.map((x) => x.maxPauseMs)).toFixed(1).padStart(21)} ${String(median(s.map((x) => x.puts))).padStart(17)}`);
    }
    console.log(`\nrestore of etcd's snapshot (${(median(saves.etcd.map((x) => x.bytes)) / 1e6).toFixed(1)} MB), medians`);
    console.log('tool        restore ms');
    for (const tool of ['keyraftctl', 'etcdctl'] as const) console.log(`${tool.padEnd(10)} ${median(restores[tool]).toFixed(0).padStart(11)}`);
  } finally {
    await killAll();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
