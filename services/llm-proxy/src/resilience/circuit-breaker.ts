/**
 * A circuit breaker per upstream: closed → open after `failureThreshold` consecutive failures →
 * after `resetTimeoutMs`, half-open lets exactly one probe through (every other call is refused
 * until the probe ends) → closed on the probe's success, open again on its failure.
 */
export type BreakerState = 'closed' | 'half_open' | 'open';
export const BREAKER_STATE_VALUE: Record<BreakerState, number> = { closed: 0, half_open: 1, open: 2 };

export interface BreakerOptions {
  failureThreshold: number;
  resetTimeoutMs: number;
  onStateChange?: (state: BreakerState) => void;
  now?: () => number;
}

/** What `tryAcquire` hands out: report the attempt's result exactly once. */
export interface BreakerPermit {
  success(): void;
  failure(): void;
  /** The attempt ended without telling anything about the upstream (client went away, 4xx). */
  release(): void;
}

export class CircuitBreaker {
  private state: BreakerState = 'closed';
  private failures = 0;
  private openedAt = 0;
  private probing = false;
  private readonly now: () => number;

  private readonly opts: BreakerOptions;

  constructor(opts: BreakerOptions) {
    this.opts = opts;
    this.now = opts.now ?? Date.now;
  }

  get current(): BreakerState {
    if (this.state === 'open' && this.now() - this.openedAt >= this.opts.resetTimeoutMs) this.set('half_open');
    return this.state;
  }

  /** Seconds until a probe may be let through (for Retry-After). */
  retryAfterSeconds(): number {
    if (this.state !== 'open') return 1;
    return Math.max(1, Math.ceil((this.opts.resetTimeoutMs - (this.now() - this.openedAt)) / 1000));
  }

  /** A permit, or undefined when the call must be refused (open, or half-open with its probe out). */
  tryAcquire(): BreakerPermit | undefined {
    const state = this.current;
    if (state === 'open') return undefined;
    let probe = false;
    if (state === 'half_open') {
      if (this.probing) return undefined;
      this.probing = true;
      probe = true;
    }
    let done = false;
    const end = (): boolean => {
      if (done) return false;
      done = true;
      if (probe) this.probing = false;
      return true;
    };
    return {
      success: () => {
        if (!end()) return;
        this.failures = 0;
        if (this.state !== 'closed') this.set('closed');
      },
      failure: () => {
        if (!end()) return;
        this.failures++;
        if (probe || this.state === 'half_open' || this.failures >= this.opts.failureThreshold) {
          this.openedAt = this.now();
          this.set('open');
        }
      },
      release: () => void end(),
    };
  }

  private set(state: BreakerState): void {
    if (this.state === state) return;
    this.state = state;
    this.opts.onStateChange?.(state);
  }
}
