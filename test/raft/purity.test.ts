// The Raft core is a pure library (DESIGN.md, CONVENTIONS.md): it imports only its own files and
// uses no I/O, timers, clock, ambient randomness or asynchrony. This reads the sources and fails on
// any import from outside src/raft and on any of the forbidden names.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../src/platform/package-root.js';

const raftDir = join(packageRoot, 'src', 'raft');
const sources = readdirSync(raftDir).filter((f) => f.endsWith('.ts')).map((f) => ({ file: f, text: readFileSync(join(raftDir, f), 'utf8') }));

/** Source without comments and string contents, so prose may mention what code may not use. */
function codeOnly(text: string): string {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/\/\/.*$/gm, '')
    .replace(/`(?:\\[\s\S]|[^`])*`/g, '``')
    .replace(/'(?:\\.|[^'\n])*'/g, "''");
}

test('src/raft has sources to check', () => {
  assert.ok(sources.length >= 8, `found ${sources.length} files`);
  assert.ok(sources.some((s) => s.file === 'raft.ts'));
});

test('src/raft imports only src/raft (no node modules, nothing else of ours)', () => {
  for (const { file, text } of sources) {
    for (const m of text.matchAll(/(?:import|export)[^;]*?from\s+'([^']+)'/g)) {
      const spec = m[1]!;
      assert.ok(/^\.\/[a-z0-9-]+\.js$/.test(spec), `${file} imports '${spec}'`);
    }
    assert.not.match(text, /\brequire\s*\(/, `${file} uses require()`);
    assert.not.match(text, /\bimport\s*\(/, `${file} uses dynamic import()`);
  }
});

test('src/raft uses no I/O, timers, clock, ambient randomness or asynchrony', () => {
  const forbidden = [
    /\bMath\.random\b/, /\bDate\b/, /\bperformance\b/, /\bPromise\b/, /\basync\b/, /\bawait\b/,
    /\bsetTimeout\b/, /\bsetInterval\b/, /\bsetImmediate\b/, /\bqueueMicrotask\b/, /\bprocess\b/,
    /\bfs\b/, /\bnet\b/, /\bglobalThis\b/, /\bconsole\b/, /\bcrypto\b/, /\bBuffer\b/,
  ];
  for (const { file, text } of sources) {
    const code = codeOnly(text);
    for (const re of forbidden) assert.not.match(code, re, `${file} uses ${re.source}`);
  }
});

test('the purity check itself notices a forbidden use', () => {
  const bad = codeOnly("import { x } from './y.js';\nconst t = Date.now(); // Date in a comment is fine\n");
  assert.match(bad, /\bDate\b/);
  assert.not.match(codeOnly("// Math.random is mentioned only here\nconst s = 'Promise';\n"), /\bMath\.random\b|\bPromise\b/);
});

test.run();
