/**
 * keyraftctl snapshot status|restore (and save, once the server streams snapshots): etcdctl
 * 3.4's commands, flags, output and exit codes, on files in etcd's own format, so a snapshot
 * moves between etcd and keyraft either way (server/etcd-snapshot-restore.ts,
 * server/etcd-snapshot-status.ts).
 */
import { open, rename, rm, stat } from 'node:fs/promises';
import { silentLogger } from '../platform/logger.js';
import { ConfigError, parseConfig } from '../server/config.js';
import { restoreEtcdSnapshot, SnapshotRestoreError } from '../server/etcd-snapshot-restore.js';
import { etcdSnapshotStatus } from '../server/etcd-snapshot-status.js';
import { BboltFormatError } from '../storage/bbolt/bbolt-format.js';
import { SnapshotFileError } from '../storage/bbolt/snapshot-trailer.js';
import type { FlagSpec } from './ctl-args.js';
import type { CommandContext } from './ctl-context.js';
import { CtlError, ExitCode } from './ctl-exit.js';
import { ProgressBar } from './ctl-progress.js';

export const SNAPSHOT_RESTORE_FLAGS: FlagSpec[] = [
  { name: 'data-dir', kind: 'string', defaultText: '', usage: 'Path to the data directory (default: <name>.keyraft, where keyraft --name <name> looks)' },
  { name: 'wal-dir', kind: 'string', defaultText: '', usage: 'Path to the WAL directory (keyraft keeps its WAL in the data dir: only an empty value is accepted)' },
  { name: 'initial-cluster', kind: 'string', defaultText: 'default=http://localhost:2380', usage: 'Initial cluster configuration for restore bootstrap' },
  { name: 'initial-cluster-token', kind: 'string', defaultText: 'etcd-cluster', usage: 'Initial cluster token for the etcd cluster during restore bootstrap' },
  { name: 'initial-advertise-peer-urls', kind: 'string', defaultText: 'http://localhost:2380', usage: 'List of this member\'s peer URLs to advertise to the rest of the cluster' },
  { name: 'name', kind: 'string', defaultText: 'default', usage: 'Human-readable name for this member' },
  { name: 'skip-hash-check', kind: 'bool', defaultText: 'false', usage: 'Ignore snapshot integrity hash value (required if copied from data directory)' },
];

/**
 * etcdctl 3.4's snapshot save: one endpoint only, the stream written to FILE.part, synced and
 * renamed to FILE, "Snapshot saved at FILE". --command-timeout bounds only finding the endpoint:
 * etcdctl 3.4.23 lets the download run as long as it takes (measured: a 22 s save with the default
 * 5 s timeout). The file is exactly what the server sent, trailer included.
 */
export async function runSnapshotSave(ctx: CommandContext): Promise<ExitCode> {
  if (ctx.args.length !== 1) throw new CtlError(ExitCode.BadArgs, 'snapshot save expects one argument');
  const path = ctx.args[0]!;
  const endpoints = ctx.flags.stringSlice('endpoints');
  if (endpoints.length !== 1) throw new CtlError(ExitCode.Error, `snapshot must be requested to one selected node, not multiple [${endpoints.join(' ')}]`);
  const partPath = `${path}.part`;
  const file = await open(partPath, 'w', 0o600);
  const progress = ProgressBar.forStdout('saving');
  let saved = false;
  try {
    let received = 0;
    let total = 0;
    for await (const response of ctx.client().serverStream<object, { remaining_bytes?: number; blob?: Buffer }>('Maintenance', 'Snapshot', {}, { deadlineMs: ctx.deadline(), unbounded: true })) {
      const blob = response.blob ?? Buffer.alloc(0);
      let at = 0;
      while (at < blob.length) at += (await file.write(blob, at, blob.length - at)).bytesWritten;
      received += blob.length;
      total = Math.max(total, received + (response.remaining_bytes ?? 0));
      progress?.update(received, total);
    }
    await file.sync();
    saved = true;
  } finally {
    progress?.finish();
    await file.close();
    if (!saved) await rm(partPath, { force: true });
  }
  await rename(partPath, path);
  ctx.out.stdout(`Snapshot saved at ${path}\n`);
  return ExitCode.Success;
}

export async function runSnapshotStatus(ctx: CommandContext): Promise<ExitCode> {
  if (ctx.args.length !== 1) throw new CtlError(ExitCode.BadArgs, 'snapshot status requires exactly one argument');
  const path = ctx.args[0]!;
  let status;
  try {
    status = await etcdSnapshotStatus(path);
  } catch (err) {
    throw asCtlError(err, path);
  }
  ctx.printer.snapshotStatus(status);
  return ExitCode.Success;
}

export async function runSnapshotRestore(ctx: CommandContext): Promise<ExitCode> {
  if (ctx.args.length !== 1) throw new CtlError(ExitCode.BadArgs, 'snapshot restore requires exactly one argument');
  const path = ctx.args[0]!;
  if (ctx.flags.string('wal-dir') !== '') {
    throw new CtlError(ExitCode.BadArgs, '--wal-dir is not supported: keyraft keeps its WAL in the data dir (member/wal)');
  }
  const name = ctx.flags.string('name');
  // etcdctl's default is NAME.etcd; keyraft's is NAME.keyraft, where `keyraft --name NAME` looks.
  const dataDir = ctx.flags.string('data-dir') || `${name}.keyraft`;
  let config;
  try {
    const parsed = parseConfig([
      '--name', name, '--data-dir', dataDir,
      '--initial-cluster', ctx.flags.string('initial-cluster'),
      '--initial-cluster-token', ctx.flags.string('initial-cluster-token'),
      '--initial-advertise-peer-urls', ctx.flags.string('initial-advertise-peer-urls'),
    ], {});
    if (parsed.kind !== 'run') throw new ConfigError('unexpected flags');
    config = parsed.config;
  } catch (err) {
    if (err instanceof ConfigError) throw new CtlError(ExitCode.Error, err.message);
    throw err;
  }
  // etcdctl 3.4 refuses any existing data dir, empty or not.
  if (await exists(dataDir)) throw new CtlError(ExitCode.Error, `data-dir ${JSON.stringify(dataDir)} exists`);
  const progress = ProgressBar.forStdout('restoring');
  try {
    const result = await restoreEtcdSnapshot({
      snapshotPath: path, config, skipHashCheck: ctx.flags.bool('skip-hash-check'), logger: silentLogger,
      onProgress: (done, total) => progress?.update(done, total),
    });
    progress?.finish();
    ctx.out.stderr(`restored snapshot ${path} into ${dataDir}: revision ${result.revision}, compacted ${result.compacted}, ${result.records} revision records, ${result.leases} leases, member ${result.identity.memberId.toString(16)} of cluster ${result.identity.clusterId.toString(16)}\n`);
  } catch (err) {
    progress?.finish();
    throw asCtlError(err, path);
  }
  return ExitCode.Success;
}

function asCtlError(err: unknown, path: string): unknown {
  if (err instanceof SnapshotFileError || err instanceof BboltFormatError || err instanceof SnapshotRestoreError) {
    return new CtlError(ExitCode.Error, err.message);
  }
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new CtlError(ExitCode.Error, `stat ${path}: no such file or directory`);
  return err;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
