/**
 * The injected randomness of the core (randomized election timeouts). The core never calls
 * Math.random: the driver passes a RandomSource, and the simulator passes a seeded one so that a
 * seed replays a run exactly.
 */
export interface RandomSource {
  /** A uniformly distributed integer in [0, bound). */
  nextInt(bound: number): number;
}

/**
 * mulberry32: a small, fast 32-bit generator; plenty for timeouts and fault schedules (not for
 * cryptography). The same seed gives the same sequence on every platform.
 */
export class SeededRandom implements RandomSource {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  nextInt(bound: number): number {
    return Math.floor(this.next() * bound);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() < p;
  }
}
