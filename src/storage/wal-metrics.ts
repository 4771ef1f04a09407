import { Counter, Histogram, type Registry } from 'prom-client';

/**
 * The WAL's Prometheus metrics, under etcd's names so existing dashboards work:
 * etcd_disk_wal_fsync_duration_seconds (etcd's buckets: 1 ms doubling to ~8 s) and
 * etcd_disk_wal_write_bytes_total. Durations are measured in the writer around each fdatasync.
 */
export class WalMetrics {
  readonly fsyncSeconds: Histogram;
  readonly writeBytes: Counter;

  constructor(registry: Registry) {
    const registers = [registry];
    this.fsyncSeconds = new Histogram({
      name: 'etcd_disk_wal_fsync_duration_seconds',
      help: 'The latency distributions of fsync called by WAL.',
      buckets: [0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192],
      registers,
    });
    this.writeBytes = new Counter({ name: 'etcd_disk_wal_write_bytes_total', help: 'Total number of bytes written in WAL.', registers });
  }
}
