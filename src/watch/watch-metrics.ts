import { Counter, Gauge, type Registry } from 'prom-client';

/** What the gauges read when scraped (the hub binds them). */
export interface WatchGaugeSources {
  watchers(): number;
  streams(): number;
  slowWatchers(): number;
  pendingEvents(): number;
}

/**
 * etcd's watch metrics, under etcd's names and help texts (mvcc/metrics.go). The gauges are read
 * from the hub when scraped, so the hot path only counts events.
 */
export class WatchMetrics {
  readonly events: Counter;
  private sources: WatchGaugeSources | null = null;

  constructor(registry: Registry) {
    const registers = [registry];
    const gauge = (name: string, help: string, read: (s: WatchGaugeSources) => number): void => {
      const metrics = this;
      new Gauge({ name, help, registers, collect() { this.set(metrics.sources === null ? 0 : read(metrics.sources)); } });
    };
    gauge('etcd_debugging_mvcc_watcher_total', 'Total number of watchers.', (s) => s.watchers());
    gauge('etcd_debugging_mvcc_watch_stream_total', 'Total number of watch streams.', (s) => s.streams());
    gauge('etcd_debugging_mvcc_slow_watcher_total', 'Total number of unsynced slow watchers.', (s) => s.slowWatchers());
    gauge('etcd_debugging_mvcc_pending_events_total', 'Total number of pending events to be sent.', (s) => s.pendingEvents());
    this.events = new Counter({ name: 'etcd_debugging_mvcc_events_total', help: 'Total number of events sent by this member.', registers });
  }

  bind(sources: WatchGaugeSources): void {
    this.sources = sources;
  }
}
