/**
 * Raft cores with one safety rule broken, for the mutation checks: the simulator and the unit
 * tests must notice each. The core exposes each rule as a protected method (raft.ts, "Rules as
 * seams"); a mutant overrides it. Production code never builds one, and RaftConfig carries no
 * bug switches.
 */
import { Raft } from '../../src/raft/raft.js';
import { MessageType, type Message } from '../../src/raft/raft-types.js';

export interface RaftBugs {
  /** Commit an entry of a previous term by counting replicas (violates Raft paper 5.4.2, Figure 8). */
  readonly commitPreviousTermByCount?: boolean;
  /** Grant a vote to every up-to-date candidate, even after voting in this term (violates 5.2). */
  readonly grantTwoVotesPerTerm?: boolean;
  /** Answer ReadIndex at once, without the heartbeat round that proves leadership (violates dissertation 6.4). */
  readonly readIndexWithoutQuorum?: boolean;
}

/** The Raft class to construct (and bootstrap) members with: Raft itself when no bug is asked for. */
export function raftClass(bugs: RaftBugs | undefined): typeof Raft {
  if (bugs === undefined || (!bugs.commitPreviousTermByCount && !bugs.grantTwoVotesPerTerm && !bugs.readIndexWithoutQuorum)) return Raft;
  return class MutantRaft extends Raft {
    protected override mayVote(m: Message): boolean {
      if (bugs.grantTwoVotesPerTerm === true && m.type === MessageType.Vote) return true;
      return super.mayVote(m);
    }

    protected override mayCommitByCounting(index: number): boolean {
      return bugs.commitPreviousTermByCount === true || super.mayCommitByCounting(index);
    }

    protected override readIndexNeedsHeartbeatRound(): boolean {
      return bugs.readIndexWithoutQuorum !== true && super.readIndexNeedsHeartbeatRound();
    }
  };
}
