/**
 * keyraftctl against a keyraft member prints what etcdctl 3.4 prints against the same member,
 * command for command (durations aside). The client is tested against real etcd in test/cli;
 * this closes the loop with our own server.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { etcdctl, etcdctlAvailable, keyraftctlBin, killAll, runCommand, startKeyraft, type ServerProcess } from './harness.js';

const test = suite('keyraftctl-on-keyraft');
let keyraft: ServerProcess;

// Read-only steps (both tools run each against the same state), after a few writes by etcdctl.
const setup: string[][] = [['put', 'a', '1'], ['put', 'b', '2'], ['put', 'a', '3'], ['del', 'b'], ['put', 'c', 'x y']];
const steps: Array<[string[], string?]> = [
  [['get', 'a']],
  [['get', '', '--prefix', '-w', 'json']],
  [['get', 'a', '--rev', '2']],
  [['get', 'a', 'z', '--sort-by', 'MODIFY', '--order', 'DESCEND', '--keys-only']],
  [['get', 'a', '--from-key', '--limit', '1', '-w', 'table']],
  [['txn', '-w', 'json'], 'value("a") = "3"\n\nget c\n\nget a\n\n'],
  [['member', 'list']],
  [['endpoint', 'status', '-w', 'table']],
  [['get', 'a', '--rev', '99']],
];

const normalize = (text: string) => text
  .replace(/took = [0-9.]+(µs|ms|s)/g, 'took = <t>')
  .replace(/^\{"level":"warn".*\n/gm, '');

test.before(async () => {
  if (!etcdctlAvailable()) throw new Error('etcdctl is not installed: apt-get install etcd-client (.ci/run does this)');
  keyraft = await startKeyraft();
  for (const args of setup) assert.is((await etcdctl(keyraft.clientPort, args)).code, 0);
});

test.after(async () => {
  await killAll();
});

test('keyraftctl and etcdctl print the same against keyraft', async () => {
  for (const [args, input] of steps) {
    const theirs = await etcdctl(keyraft.clientPort, args, input);
    const ours = await runCommand(process.execPath, [keyraftctlBin, `--endpoints=127.0.0.1:${keyraft.clientPort}`, ...args], { input });
    const what = `${args.join(' ')}${input ? ` <<< ${JSON.stringify(input)}` : ''}`;
    assert.is(normalize(ours.stdout), normalize(theirs.stdout), `stdout of ${what}`);
    assert.is(normalize(ours.stderr), normalize(theirs.stderr), `stderr of ${what}`);
    assert.is(ours.code, theirs.code, `exit code of ${what}`);
  }
});

test.run();
