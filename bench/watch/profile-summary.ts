/**
 * `node dist/bench/watch/profile-summary.js FILE.cpuprofile [N]`: the N functions with the most
 * self time and the most total time (self plus callees, each function counted once per stack),
 * as shares of the samples, to read a profile without DevTools.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
}

function main(file: string, top: number): void {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const name = (n: ProfileNode): string => {
    const url = n.callFrame.url.replace(/^.*\/(dist|node_modules)\//, '');
    return `${n.callFrame.functionName || '(anonymous)'} ${url}:${n.callFrame.lineNumber + 1}`;
  };
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let busy = 0;
  for (const id of profile.samples) {
    const leaf = byId.get(id)!;
    const leafName = name(leaf);
    if (leaf.callFrame.functionName === '(idle)') continue;
    busy++;
    self.set(leafName, (self.get(leafName) ?? 0) + 1);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const n = name(byId.get(at)!);
      if (seen.has(n)) continue;
      seen.add(n);
      total.set(n, (total.get(n) ?? 0) + 1);
    }
  }
  const print = (title: string, m: Map<string, number>): void => {
    console.log(`${title} (of ${busy} busy samples, ${profile.samples.length} in all)`);
    for (const [n, c] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${((100 * c) / busy).toFixed(1).padStart(6)}%  ${n}`);
  };
  print('self', self);
  print('total', total);
}

main(process.argv[2]!, Number(process.argv[3] ?? 40));
