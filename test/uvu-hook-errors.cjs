// Preloaded into every uvu process by test/run.mjs (node --require). uvu runs a suite's `before`
// hooks inside a try whose `finally` returns, so an error thrown by a hook is dropped without a
// word: the suite prints "(0 / N)" in green and the process may exit 0. A member that failed to
// start in a `before` hook was therefore reported only as tests that did not pass, with no reason
// (stop 18's CI run). This wraps `before` of every suite so the error is printed as a FAIL block
// (which run.mjs repeats above its summary) and the process exits non-zero.
'use strict';
const uvu = require('uvu');

let hookFailed = false;

function report(suiteName, err) {
  hookFailed = true;
  const text = err && err.stack ? err.stack : String(err);
  process.stdout.write(`\n   FAIL  "${suiteName || '(unnamed suite)'}" before hook: ${text.split('\n').join('\n    ')}\n\n`);
}

function guardBefore(test, suiteName) {
  const before = test.before;
  const guarded = (fn) => before(async (state) => {
    try {
      await fn(state);
    } catch (err) {
      report(suiteName, err);
      throw err;
    }
  });
  guarded.each = before.each;
  test.before = guarded;
  return test;
}

const originalSuite = uvu.suite;
uvu.suite = (name, state) => guardBefore(originalSuite(name, state), name);
guardBefore(uvu.test, '');

process.on('exit', () => {
  if (hookFailed) process.exitCode = 1;
});

// run.mjs sends SIGUSR2 to a suite whose tests finished but whose process stays up: write Node's
// diagnostic report (its libuv section lists every open handle) where run.mjs reads it. Nothing
// written means the event loop itself is stuck.
if (process.env.KEYRAFT_REPORT_FILE) {
  process.on('SIGUSR2', () => {
    process.report.writeReport(process.env.KEYRAFT_REPORT_FILE);
  });
}
