// Layering is a test (CONVENTIONS.md): each folder of src/ imports only the folders below it
// (DESIGN.md: api, peer -> server -> (raft, mvcc, watch, lease, auth) -> storage -> platform, and
// the protocol plumbing under api: api -> grpc -> http -> platform). This reads every source's
// imports and fails on one that reaches up or sideways, and on a folder the table does not know.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../src/platform/package-root.js';

/** What each folder may import besides itself. */
const allowed: Record<string, readonly string[]> = {
  platform: [],
  raft: [],
  proto: ['platform'],
  storage: ['platform', 'proto'],
  mvcc: ['platform', 'proto', 'storage'],
  watch: ['platform', 'proto', 'storage', 'mvcc'],
  lease: ['platform', 'proto', 'storage', 'mvcc'],
  auth: ['platform', 'proto', 'storage', 'mvcc'],
  peer: ['platform', 'proto', 'raft'],
  server: ['platform', 'proto', 'raft', 'storage', 'mvcc', 'watch', 'lease', 'auth', 'peer'],
  http: ['platform'],
  grpc: ['platform', 'http'],
  api: ['platform', 'proto', 'server', 'grpc', 'http'],
  // The entry points, above the composition root (src/main.ts) that wires the layers.
  cli: ['main', 'platform', 'proto', 'raft', 'storage', 'mvcc', 'watch', 'lease', 'auth', 'peer', 'server', 'http', 'grpc', 'api'],
};

const srcDir = join(packageRoot, 'src');
const folders = readdirSync(srcDir).filter((f) => statSync(join(srcDir, f)).isDirectory());

/** The src/ folders a file's relative imports name. */
function importedFolders(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/(?:import|export)[^;]*?from\s+'(\.[^']+)'/g)) {
    const spec = m[1]!;
    if (spec.startsWith('./')) continue; // its own folder
    // '../api/x.js' names the folder api; '../main.js' the composition root, src/main.ts.
    const parts = /^\.\.\/([a-z0-9-]+)(?:\/|\.js$)/.exec(spec);
    out.push(parts === null ? spec : parts[1]!);
  }
  return out;
}

test('every folder of src/ is in the layering table', () => {
  for (const folder of folders) assert.ok(folder in allowed, `src/${folder} is not in the layering table: add it with the folders it may import`);
});

test('each folder imports only the folders below it', () => {
  const violations: string[] = [];
  for (const folder of folders) {
    const dir = join(srcDir, folder);
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
      for (const target of importedFolders(readFileSync(join(dir, file), 'utf8'))) {
        if (!(allowed[folder] ?? []).includes(target)) violations.push(`src/${folder}/${file} imports ${target}`);
      }
    }
  }
  assert.equal(violations, []);
});

test('the check notices an import that reaches up', () => {
  assert.equal(importedFolders("import { Gateway } from '../api/gateway.js';\nimport { x } from './y.js';"), ['api']);
});

test.run();
