// Runs every scenario under test/raft/testdata (scenario-runner.ts describes the format).
// `node dist/test/raft/scenarios.test.js --rewrite` regenerates the expected output.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../src/platform/package-root.js';
import { ScenarioRunner, formatScenario, parseScenario } from './scenario-runner.js';

const dir = join(packageRoot, 'test', 'raft', 'testdata');
const rewrite = process.argv.includes('--rewrite');

for (const file of readdirSync(dir).filter((f) => f.endsWith('.txt')).sort()) {
  test(`scenario ${file}`, () => {
    const path = join(dir, file);
    const blocks = parseScenario(readFileSync(path, 'utf8'));
    assert.ok(blocks.length > 0);
    const runner = new ScenarioRunner();
    const actual = blocks.map((b) => ({ ...b, expected: runner.run(b.command) }));
    if (rewrite) {
      writeFileSync(path, formatScenario(actual));
      return;
    }
    for (let i = 0; i < blocks.length; i++) {
      assert.fixture(actual[i]!.expected.join('\n'), blocks[i]!.expected.join('\n'), `${file}: "${blocks[i]!.command}" (block ${i + 1})`);
    }
  });
}

test('the scenario format round-trips', () => {
  const text = '# c\nstatus\n----\na\nb\n\nheal\n----\nok\n';
  assert.is(formatScenario(parseScenario(text)), text);
});

test.run();
