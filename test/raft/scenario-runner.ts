/**
 * Scripted scenarios in the style of etcd-io/raft's interaction tests. A scenario file is a list of
 * blocks:
 *
 *   # comments (kept)
 *   command arg arg
 *   ----
 *   expected output, compared exactly
 *   (a blank line ends the block)
 *
 * Commands (members are numbers):
 *   bootstrap N [prevote=false] [checkquorum=false] [maxbytes=B]   a cluster of N founding voters
 *   campaign ID | tick ID [N] | tick-all [N] | stabilize            stabilize prints every message delivered
 *   run N                    N rounds of: tick every member, deliver everything (prints nothing)
 *   propose ID DATA | propose-n ID N PREFIX | read-index ID CTX | transfer ID TO | compact ID | restart ID
 *   add-learner LEADER ID | add-voter LEADER ID | remove LEADER ID
 *   isolate ID | partition 1,2 3,4,5 | heal
 *   deliver TYPE[,TYPE...]   deliver only queued messages of these types (and answers of them), printing them
 *   drop-queue               lose every message in flight
 *   status | raft-log ID | applied ID | read-states ID
 * Run `node dist/test/raft/scenarios.test.js --rewrite` to regenerate the expected output, then
 * review the diff.
 */
import { ConfChangeType } from '../../src/raft/conf-change.js';
import { isRaftError } from '../../src/raft/raft-errors.js';
import { MessageType } from '../../src/raft/raft-types.js';
import { TestCluster, formatMessage } from './test-cluster.js';

export interface Block {
  readonly comments: string[];
  readonly command: string;
  readonly expected: string[];
}

export function parseScenario(text: string): Block[] {
  const lines = text.split('\n');
  const blocks: Block[] = [];
  let i = 0;
  while (i < lines.length) {
    const comments: string[] = [];
    while (i < lines.length && (lines[i]!.startsWith('#') || lines[i]!.trim() === '')) {
      if (lines[i]!.startsWith('#')) comments.push(lines[i]!);
      i++;
    }
    if (i >= lines.length) break;
    const command = lines[i++]!;
    if (lines[i] !== '----') throw new Error(`line ${i + 1}: expected ---- after "${command}"`);
    i++;
    const expected: string[] = [];
    while (i < lines.length && lines[i] !== '') expected.push(lines[i++]!);
    blocks.push({ comments, command, expected });
  }
  return blocks;
}

export function formatScenario(blocks: readonly Block[]): string {
  return blocks.map((b) => [...b.comments, b.command, '----', ...b.expected].join('\n')).join('\n\n') + '\n';
}

export class ScenarioRunner {
  private cluster: TestCluster | null = null;

  private c(): TestCluster {
    if (this.cluster === null) throw new Error('no cluster: start with bootstrap');
    return this.cluster;
  }

  run(command: string): string[] {
    const [name, ...args] = command.trim().split(/\s+/);
    const num = (i: number) => {
      const v = Number(args[i]);
      if (!Number.isInteger(v)) throw new Error(`${name}: argument ${i + 1} must be a number`);
      return v;
    };
    try {
      return this.dispatch(name!, args, num);
    } catch (err) {
      if (isRaftError(err)) return [`error: ${err.code}`];
      throw err;
    }
  }

  private dispatch(name: string, args: string[], num: (i: number) => number): string[] {
    switch (name) {
      case 'bootstrap': {
        const opts = new Map(args.slice(1).map((a) => a.split('=') as [string, string]));
        this.cluster = TestCluster.bootstrap(num(0), {
          preVote: opts.get('prevote') !== 'false',
          checkQuorum: opts.get('checkquorum') !== 'false',
          maxMessageBytes: opts.has('maxbytes') ? Number(opts.get('maxbytes')) : undefined,
        });
        return this.status();
      }
      case 'campaign':
        this.c().campaign(num(0));
        return ['ok'];
      case 'tick':
        this.c().tick(num(0), args[1] === undefined ? 1 : num(1));
        return ['ok'];
      case 'tick-all':
        this.c().tickAll(args[0] === undefined ? 1 : num(0));
        return ['ok'];
      case 'stabilize': {
        const c = this.c();
        c.recorded = [];
        c.stabilize();
        const out = c.recorded;
        c.recorded = null;
        return out.length === 0 ? ['(no messages)'] : out;
      }
      case 'deliver': {
        const c = this.c();
        const types = new Set(args[0]!.split(',').map((t) => {
          const v = MessageType[t as keyof typeof MessageType];
          if (v === undefined) throw new Error(`unknown message type ${t}`);
          return v;
        }));
        c.recorded = [];
        c.deliverAllWhere((m) => types.has(m.type));
        const out = c.recorded;
        c.recorded = null;
        return out.length === 0 ? ['(no messages)'] : out;
      }
      case 'run':
        this.c().run(num(0));
        return ['ok'];
      case 'drop-queue': {
        const n = this.c().queue.length;
        this.c().queue.length = 0;
        return [`dropped ${n} messages`];
      }
      case 'propose-n': {
        // propose-n ID N PREFIX: N proposals PREFIX0..PREFIX{N-1}
        let first = 0;
        for (let i = 0; i < num(1); i++) {
          const index = this.c().propose(num(0), `${args[2] ?? 'p'}${i}`);
          if (i === 0) first = index;
        }
        return [`indexes ${first}..${first + num(1) - 1}`];
      }
      case 'propose': {
        const index = this.c().propose(num(0), args[1] ?? '');
        return [index === 0 ? 'forwarded to the leader' : `index ${index}`];
      }
      case 'read-index':
        this.c().raft(num(0)).readIndex(new TextEncoder().encode(args[1] ?? ''));
        this.c().process(BigInt(num(0)));
        return ['ok'];
      case 'read-states':
        return this.c().node(num(0)).readStates.map((r) => `index ${r.index} context ${new TextDecoder().decode(r.context)}`);
      case 'transfer':
        this.c().raft(num(0)).transferLeadership(BigInt(num(1)));
        this.c().process(BigInt(num(0)));
        return ['ok'];
      case 'compact': {
        const raft = this.c().raft(num(0));
        const node = this.c().node(num(0));
        const applied = raft.status().applied;
        node.snapshot = raft.compact(applied, new TextEncoder().encode(`image@${applied}`));
        node.entries = node.entries.filter((e) => e.index > applied);
        return [`snapshot ${applied}/${node.snapshot.metadata.term} first index now ${raft.log.firstIndex()}`];
      }
      case 'restart':
        this.c().restart(num(0));
        return this.status();
      case 'add-learner':
      case 'add-voter':
      case 'remove': {
        const type = name === 'add-learner' ? ConfChangeType.AddLearner : name === 'add-voter' ? ConfChangeType.AddVoter : ConfChangeType.RemoveMember;
        const index = this.c().raft(num(0)).proposeConfChange({ type, memberId: BigInt(num(1)), context: new Uint8Array(0) });
        if (name === 'add-learner') this.c().addEmptyNode(BigInt(num(1)));
        this.c().process(BigInt(num(0)));
        return [`index ${index}`];
      }
      case 'isolate':
        this.c().isolate(num(0));
        return ['ok'];
      case 'partition':
        this.c().partition(args[0]!.split(',').map(Number), args[1]!.split(',').map(Number));
        return ['ok'];
      case 'heal':
        this.c().heal();
        return ['ok'];
      case 'status':
        return this.status();
      case 'raft-log': {
        const log = this.c().logOf(num(0));
        return [log === '' ? '(empty)' : log];
      }
      case 'applied': {
        const data = this.c().appliedData(num(0));
        return [data.length === 0 ? '(nothing)' : data.join(' ')];
      }
      default:
        throw new Error(`unknown command ${name}`);
    }
  }

  private status(): string[] {
    const out: string[] = [];
    for (const node of this.c().nodes.values()) {
      const s = node.raft.status();
      const conf = s.conf.voters.includes(s.id) ? 'voter' : s.conf.learners.includes(s.id) ? 'learner' : 'not a member';
      out.push(`${s.id}: ${s.role} term=${s.term} leader=${s.leader} commit=${s.committed} applied=${s.applied} last=${s.lastIndex} (${conf})`);
    }
    return out;
  }
}

export { formatMessage };
