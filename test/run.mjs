// Runs every test suite under dist/test, one uvu process per folder, so a hang or crash in one
// suite is reported against that suite and the rest still run. Ends with the plain summary line
// "N passed, M failed, K skipped" that CI reads, and exits 0 when nothing failed. A suite that
// times out counts as failed. A suite whose tests all passed but whose process stays up 30 s
// after them is killed and listed as a WARNING above the summary with its open handles. Skipped
// tests are those uvu counts as skipped; their reasons are the "[skip] <where> > <test>: needs
// <what>: <why>" lines test/etcd-binaries.ts prints, listed above the summary.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// KEYRAFT_DIST: a compiled tree other than dist/ (e.g. `tsc -p . --outDir build-mine` to test a
// build nobody else is rewriting), relative to the package root, or absolute.
const distDir = resolve(root, process.env.KEYRAFT_DIST ?? 'dist');
const distTest = join(distDir, 'test');
const suiteTimeoutMs = Number(process.env.KEYRAFT_SUITE_TIMEOUT_MS ?? 600_000);
// A suite whose tests have all finished (uvu printed its totals) but whose process stays alive
// holds something open: a socket, a timer or a child's pipe. It is given this long to exit, then
// Node's diagnostic report names the handles still open, and the suite is killed and fails.
const exitGraceMs = Number(process.env.KEYRAFT_SUITE_EXIT_GRACE_MS ?? 30_000);
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
    const reportDir = mkdtempSync(join(tmpdir(), `keyraft-report-${name}-`));
    const child = spawn(process.execPath, [
      '--require', join(root, 'test', 'uvu-hook-errors.cjs'),
      join(root, 'node_modules', 'uvu', 'bin.js'), join(distTest, name), '\\.test\\.js$',
    ], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, KEYRAFT_REPORT_FILE: join(reportDir, 'report.json') },
    });
    let output = '';
    let exitTimer = null;
    let heldOpen = false;
    let openHandles = '';
    // Taken before SIGUSR2: a process stuck in its exit (joining a thread) dies of that signal
    // with no report, and the threads' wait channels are then all that says where it was.
    let threads = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
      process.stdout.write(chunk);
      if (exitTimer === null && /Duration:/.test(output)) {
        exitTimer = setTimeout(() => {
          heldOpen = true;
          console.error(`\n[run] suite ${name} finished its tests but its process did not exit within ${exitGraceMs} ms`);
          threads = describeThreads(child.pid);
          child.kill('SIGUSR2');
          setTimeout(() => {
            if (child.exitCode !== null || child.signalCode !== null) return;
            openHandles = `${describeOpenHandles(reportDir)}\n${threads}`;
            console.error(openHandles);
            child.kill('SIGKILL');
          }, 3000).unref();
        }, exitGraceMs);
      }
    });
    const timer = setTimeout(() => {
      console.error(`\n[run] suite ${name} exceeded ${suiteTimeoutMs} ms, killing pid ${child.pid}`);
      child.kill('SIGKILL');
    }, suiteTimeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (exitTimer !== null) clearTimeout(exitTimer);
      // It may have ended within the 3 s the report is given (the report written or not).
      if (heldOpen && openHandles === '') openHandles = `${describeOpenHandles(reportDir)}\n${threads}`;
      rmSync(reportDir, { recursive: true, force: true });
      const plain = output.replace(/\x1b\[[0-9;]*m/g, '');
      const total = Number(/Total:\s+(\d+)/.exec(plain)?.[1] ?? 0);
      const passed = Number(/Passed:\s+(\d+)/.exec(plain)?.[1] ?? 0);
      // A process that lingered after every test passed is reported loudly (above the summary,
      // with its open handles) but fails nothing: its tests' verdicts are in; it was killed, and
      // the members it started were killed by PID in its after hooks. A lingering process whose
      // tests did not all pass fails as any other.
      const allPassed = total > 0 && passed === total && /Duration:/.test(output);
      const failed = code === 0 || (heldOpen && allPassed) ? total - passed : Math.max(1, total - passed);
      const skipped = Number(/Skipped:\s+(\d+)/.exec(plain)?.[1] ?? 0);
      const skipLines = [...plain.matchAll(/\[skip\] (.*)/g)].map((m) => m[1]);
      // A test that fails because KEYRAFT_REQUIRE_ETCD=1 and a tool is missing says so first.
      const required = [...plain.matchAll(/(KEYRAFT_REQUIRE_ETCD=1 and .*)/g)].map((m) => m[1]);
      const lingered = heldOpen ? `the suite's tests finished but its process did not exit within ${exitGraceMs} ms; killed\n${openHandles}` : null;
      resolve({ name, total, passed, failed, skipped, skipLines, required, failureReports: [...failureReports(plain), ...(lingered !== null && failed > 0 ? [lingered] : [])], lingered: failed > 0 ? null : lingered, code, ms: Date.now() - started });
    });
  });
}

// Where each thread of a stuck process waits (Linux /proc: its name, state and kernel wait
// channel), for when no diagnostic report comes: a main thread in futex_wait while libuv's
// workers sit in a file operation says the exit waits for the thread pool, for instance.
function describeThreads(pid) {
  try {
    const lines = readdirSync(`/proc/${pid}/task`).map((tid) => {
      const read = (file) => { try { return readFileSync(`/proc/${pid}/task/${tid}/${file}`, 'utf8').trim(); } catch { return '?'; } };
      const state = /\) (\S)/.exec(read('stat'))?.[1] ?? '?';
      return `  thread ${tid} ${read('comm')} state ${state} waiting in ${read('wchan')}`;
    });
    return `[run] threads of pid ${pid}:\n${lines.join('\n')}`;
  } catch (err) {
    return `[run] threads of pid ${pid}: ${err.message}`;
  }
}

// The libuv handles a diagnostic report lists as active and referenced: what keeps the process up.
function describeOpenHandles(reportDir) {
  const files = existsSync(reportDir) ? readdirSync(reportDir).filter((f) => f.endsWith('.json')) : [];
  if (files.length === 0) return '[run] no diagnostic report was written within 3 s of SIGUSR2: the event loop did not run (stuck in a synchronous call or native code), or the process was exiting';
  try {
    const report = JSON.parse(readFileSync(join(reportDir, files[0]), 'utf8'));
    const open = (report.libuv ?? []).filter((h) => h.is_active && h.is_referenced);
    const lines = [`[run] ${open.length} active referenced handle(s) kept it alive:`];
    for (const h of open) {
      const { type, address, is_active, is_referenced, ...rest } = h;
      lines.push(`  ${type} ${JSON.stringify(rest)}`);
    }
    return lines.join('\n');
  } catch (err) {
    return `[run] reading the diagnostic report failed: ${err.message}`;
  }
}

// uvu prints each failure as a block that starts at a "FAIL" line, in the middle of a long suite's
// output; CI keeps only the tail of the log, so the blocks are printed again above the summary.
function failureReports(plain) {
  const lines = plain.split('\n');
  const reports = [];
  lines.forEach((line, at) => {
    if (/^\s*FAIL\s/.test(line)) reports.push(lines.slice(at, at + 25).join('\n'));
  });
  return reports;
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
for (const r of results.filter((result) => result.failed > 0)) {
  console.log(`\n=== failures in suite ${r.name} (exit code ${r.code}) ===`);
  for (const report of r.failureReports) console.log(report);
  if (r.failureReports.length === 0) console.log('(no FAIL block printed: a crash, a hang or a timeout; see the suite above)');
}
for (const r of results.filter((result) => result.lingered)) {
  console.log(`\n=== WARNING: suite ${r.name}: every test passed, but ===\n${r.lingered}`);
}
console.log('\nsuite            passed  failed skipped  seconds');
for (const r of results) {
  console.log(`${r.name.padEnd(16)} ${String(r.passed).padStart(6)}  ${String(r.failed).padStart(6)} ${String(r.skipped).padStart(7)}  ${(r.ms / 1000).toFixed(1).padStart(7)}`);
}
const passed = results.reduce((n, r) => n + r.passed, 0);
const failed = results.reduce((n, r) => n + r.failed, 0);
const skipped = results.reduce((n, r) => n + r.skipped, 0);
// What was skipped, grouped by why: "<where> > <test>: needs <what>: <why>" lines.
const byReason = new Map();
for (const r of results) {
  for (const line of r.skipLines) {
    const at = line.lastIndexOf(': needs ');
    const [what, why] = at < 0 ? [line, 'no reason given'] : [line.slice(0, at), line.slice(at + 2)];
    byReason.set(why, [...(byReason.get(why) ?? []), what]);
  }
}
if (skipped > 0) {
  console.log(`\nskipped ${skipped}:`);
  for (const [why, whats] of byReason) {
    console.log(`  ${why}:`);
    for (const what of whats) console.log(`    ${what}`);
  }
  const unexplained = skipped - [...byReason.values()].reduce((n, w) => n + w.length, 0);
  if (unexplained > 0) console.log(`  ${unexplained} more, skipped without a [skip] line (uvu's test.skip or .only)`);
}
const required = [...new Set(results.flatMap((r) => r.required))];
if (required.length > 0) {
  console.log('\nfailed because etcd or etcdctl is required here (KEYRAFT_REQUIRE_ETCD=1) but missing:');
  for (const line of required) console.log(`  ${line}`);
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed === 0 ? 0 : 1);
