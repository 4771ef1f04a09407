/**
 * `node dist/bench/watch/trace-summary.js DIR [windowMs]`: reads what `watch-bench
 * --keyraft-trace DIR` wrote (per round: the writer's per-put send and ack times, and the
 * member's main-thread stalls and GC pauses) and prints, per round, put-ack latency by window of
 * send time (count, p50, p99, max) next to the member's stalls and GC time in that window, so a
 * tail can be placed: start-up (the first puts on a cold member), one long pause, or a backlog.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

interface WriterTrace { sendTimes: number[]; ackBySeq: number[]; lastWatcherBySeq: number[]; disk?: string[] }
interface MemberTrace { end: number; stalls: Array<[number, number]>; gcs: Array<[number, number, number]> }

/** V8's GC kinds as perf_hooks reports them (NODE_PERFORMANCE_GC_*). */
const GC_KIND: Record<number, string> = { 1: 'scavenge', 2: 'mark-compact', 4: 'incremental', 8: 'weak-cb' };

const pct = (sorted: number[], q: number): number => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!);
const f = (x: number): string => x.toFixed(1).padStart(7);

function main(dir: string, windowMs: number): void {
  for (const file of readdirSync(dir).filter((n) => n.startsWith('writer-')).sort()) {
    const pid = file.slice('writer-'.length, -'.json'.length);
    const w = JSON.parse(readFileSync(join(dir, file), 'utf8')) as WriterTrace;
    let m: MemberTrace = { end: 0, stalls: [], gcs: [] };
    try { m = JSON.parse(readFileSync(join(dir, `keyraft-trace-${pid}.json`), 'utf8')) as MemberTrace; } catch { /* no member trace */ }
    const start = w.sendTimes[0]!;
    const end = w.sendTimes[w.sendTimes.length - 1]! + 1000;
    const all = w.ackBySeq.filter((x) => x >= 0).sort((a, b) => a - b);
    const p99 = pct(all, 0.99);
    console.log(`\nround member ${pid}: ${all.length} puts, ack p50 ${pct(all, 0.5).toFixed(1)} p99 ${p99.toFixed(1)} max ${all[all.length - 1]?.toFixed(1)} ms`);
    console.log(`puts at or above p99 by send time (ms from first put): ${w.ackBySeq.map((x, i) => [x, w.sendTimes[i]! - start] as const).filter(([x]) => x >= p99).map(([, t]) => t.toFixed(0)).filter((_, i, a) => i === 0 || i === a.length - 1 || i % 20 === 0).join(' ')}`);
    // Cumulative histogram buckets: print the non-empty steps (le="x" count).
    for (const name of ['wal_fsync', 'backend_commit']) {
      let last = 0;
      const steps: string[] = [];
      for (const line of (w.disk ?? []).filter((l) => l.includes(name))) {
        const le = /le="([^"]+)"/.exec(line)?.[1];
        const n = Number(line.slice(line.lastIndexOf(' ') + 1));
        if (n !== last) steps.push(`<=${le}s: ${n - last}`);
        last = n;
      }
      if (steps.length > 0) console.log(`${name}: ${steps.join(', ')}`);
    }
    console.log(' window ms |  puts | ack p50 | ack p99 | ack max | last-w p99 | stalls>10ms (sum, max) | gc ms (max, kinds)');
    for (let t0 = start; t0 < end; t0 += windowMs) {
      const lat: number[] = [];
      const lw: number[] = [];
      for (let i = 0; i < w.sendTimes.length; i++) {
        const t = w.sendTimes[i]!;
        if (t < t0 || t >= t0 + windowMs) continue;
        if (w.ackBySeq[i]! >= 0) lat.push(w.ackBySeq[i]!);
        if (w.lastWatcherBySeq[i]! >= 0) lw.push(w.lastWatcherBySeq[i]!);
      }
      lat.sort((a, b) => a - b);
      lw.sort((a, b) => a - b);
      const stalls = m.stalls.filter(([t]) => t >= t0 && t < t0 + windowMs);
      const gcs = m.gcs.filter(([t]) => t >= t0 && t < t0 + windowMs);
      const kinds = [...new Set(gcs.map(([, , k]) => GC_KIND[k] ?? String(k)))].join(',');
      console.log(`${(t0 - start).toFixed(0).padStart(10)} | ${String(lat.length).padStart(5)} | ${f(pct(lat, 0.5))} | ${f(pct(lat, 0.99))} | ${f(lat[lat.length - 1] ?? 0)} | ${f(pct(lw, 0.99))}    | ${String(stalls.length).padStart(3)} (${stalls.reduce((s, [, d]) => s + d, 0).toFixed(0)}, ${Math.max(0, ...stalls.map(([, d]) => d)).toFixed(0)}) | ${gcs.reduce((s, [, d]) => s + d, 0).toFixed(1)} (${Math.max(0, ...gcs.map(([, d]) => d)).toFixed(1)}, ${kinds})`);
    }
  }
}

main(process.argv[2] ?? '.', Number(process.argv[3] ?? 250));
