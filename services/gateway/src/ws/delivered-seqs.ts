/**
 * The seqs of the frames one connection has delivered, so that a replay (`resume`) never sends a
 * client a frame twice. Each stream relayed to the client (a turn, a replay) is one run from its
 * first to its last seq: the runtime runs one turn per session at a time, so the session's frames
 * between those two all came through that stream. Bounded: the most recent runs are kept.
 */
export class DeliveredSeqs {
  private readonly runs: [low: number, high: number][] = [];
  private open = false;
  private readonly maxRuns: number;

  constructor(maxRuns = 256) {
    this.maxRuns = maxRuns;
  }

  /** A new stream starts: its frames form a new run. */
  startRun(): void {
    this.open = false;
  }

  add(seq: number): void {
    const last = this.runs.at(-1);
    if (this.open && last && seq >= last[0]) {
      if (seq > last[1]) last[1] = seq;
      return;
    }
    this.runs.push([seq, seq]);
    this.open = true;
    if (this.runs.length > this.maxRuns) this.runs.shift();
  }

  has(seq: number): boolean {
    for (let i = this.runs.length - 1; i >= 0; i--) {
      const [low, high] = this.runs[i]!;
      if (seq >= low && seq <= high) return true;
    }
    return false;
  }
}
