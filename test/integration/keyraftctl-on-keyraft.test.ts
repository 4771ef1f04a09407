/**
 * keyraftctl against a keyraft member prints what etcdctl 3.4 prints against the same member,
 * command for command (durations aside). The client is tested against real etcd in test/cli;
 * this closes the loop with our own server. The comparison needs etcdctl (skipped with its reason
 * without it, ../etcd-binaries.ts); the outputs written here are checked always.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { needEtcd } from '../etcd-binaries.js';
import { etcdctl, keyraftctlBin, killAll, runCommand, startKeyraft, type ServerProcess } from './harness.js';

const test = suite('keyraftctl-on-keyraft');
let keyraft: ServerProcess;
const need = needEtcd('integration/keyraftctl-on-keyraft', ['etcdctl']);

// Read-only steps (both tools run each against the same state), after a few writes (by etcdctl
// when it is there, else by keyraftctl).
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

function keyraftctl(args: string[], input?: string) {
  return runCommand(process.execPath, [keyraftctlBin, `--endpoints=127.0.0.1:${keyraft.clientPort}`, ...args], { input });
}

test.before(async () => {
  keyraft = await startKeyraft();
  for (const args of setup) {
    const r = need.found ? await etcdctl(keyraft.clientPort, args) : await keyraftctl(args);
    assert.is(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  }
});

test.after(async () => {
  await killAll();
});

need.test(test, 'keyraftctl and etcdctl print the same against keyraft', async () => {
  for (const [args, input] of steps) {
    const theirs = await etcdctl(keyraft.clientPort, args, input);
    const ours = await keyraftctl(args, input);
    const what = `${args.join(' ')}${input ? ` <<< ${JSON.stringify(input)}` : ''}`;
    assert.is(normalize(ours.stdout), normalize(theirs.stdout), `stdout of ${what}`);
    assert.is(normalize(ours.stderr), normalize(theirs.stderr), `stderr of ${what}`);
    assert.is(ours.code, theirs.code, `exit code of ${what}`);
  }
});

// The same state read by keyraftctl alone, outputs as etcdctl 3.4 prints them (the test above
// proves that where etcdctl is installed).
test('keyraftctl prints the outputs written here against keyraft', async () => {
  const expect = async (args: string[], stdout: string, code = 0, stderr = '') => {
    const r = await keyraftctl(args);
    assert.is(r.stdout, stdout, `stdout of ${args.join(' ')}`);
    assert.is(r.stderr, stderr, `stderr of ${args.join(' ')}`);
    assert.is(r.code, code, `exit code of ${args.join(' ')}`);
  };
  await expect(['get', 'a'], 'a\n3\n');
  await expect(['get', '', '--prefix', '--keys-only'], 'a\n\nc\n\n');
  await expect(['get', 'a', '--rev', '2'], 'a\n1\n');
  await expect(['get', 'a', 'z', '--print-value-only'], '3\nx y\n');
  await expect(['get', 'b'], '');
  await expect(['put', 'd', 'new'], 'OK\n');
  await expect(['del', 'd'], '1\n');
  await expect(['get', 'a', '--rev', '99'], '', 1, 'Error: etcdserver: mvcc: required revision is a future revision\n');
});

test.run();
