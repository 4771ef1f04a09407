// Runs every test suite under dist/test, one uvu process per folder, so a hang or crash in one
// suite is reported against that suite and the rest still run. Ends with the plain summary line
// "N passed, N failed" that CI reads. A suite that times out counts as failed.
import { spawn } from 'node:child_process';
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// KEYRAFT_DIST: a compiled tree other than dist/ (e.g. `tsc -p . --outDir build-mine` to test a
// build nobody else is rewriting), relative to the package root.
const distDir = process.env.KEYRAFT_DIST ?? 'dist';
const distTest = join(root, distDir, 'test');
const suiteTimeoutMs = Number(process.env.KEYRAFT_SUITE_TIMEOUT_MS ?? 300_000);
const only = process.argv.slice(2);

function listSuites() {
  if (!existsSync(distTest)) return [];
  return readdirSync(distTest)
    .filter((name) => statSync(join(distTest, name)).isDirectory())
    .filter((name) => only.length === 0 || only.includes(name))
    .sort();
}

function runSuite(name) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, [join(root, 'node_modules', 'uvu', 'bin.js'), join(distDir, 'test', name), '\\.test\\.js$'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
      process.stdout.write(chunk);
    });
    const timer = setTimeout(() => {
      console.error(`\n[run] suite ${name} exceeded ${suiteTimeoutMs} ms, killing pid ${child.pid}`);
      child.kill('SIGKILL');
    }, suiteTimeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      const plain = output.replace(/\x1b\[[0-9;]*m/g, '');
      const total = Number(/Total:\s+(\d+)/.exec(plain)?.[1] ?? 0);
      const passed = Number(/Passed:\s+(\d+)/.exec(plain)?.[1] ?? 0);
      const failed = code === 0 ? total - passed : Math.max(1, total - passed);
      resolve({ name, total, passed, failed, code, ms: Date.now() - started });
    });
  });
}

const suites = listSuites();
if (suites.length === 0) {
  console.error('[run] no test suites found under dist/test: run `tsc -p .` first');
  process.exit(1);
}
const results = [];
for (const name of suites) {
  console.log(`\n=== suite ${name} ===`);
  results.push(await runSuite(name));
}
console.log('\nsuite            passed  failed  seconds');
for (const r of results) {
  console.log(`${r.name.padEnd(16)} ${String(r.passed).padStart(6)}  ${String(r.failed).padStart(6)}  ${(r.ms / 1000).toFixed(1).padStart(7)}`);
}
const passed = results.reduce((n, r) => n + r.passed, 0);
const failed = results.reduce((n, r) => n + r.failed, 0);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
