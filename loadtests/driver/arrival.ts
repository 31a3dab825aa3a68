/**
 * The open-model executor, like k6's `ramping-arrival-rate`: iterations start on a schedule that
 * follows the stages (the rate ramps linearly from one target to the next; fractional rates are
 * spread over time), whether or not earlier ones have finished. Each iteration needs a free VU: the
 * pool starts with `preAllocatedVUs` and grows up to `maxVUs`; when every VU is busy the iteration is
 * DROPPED (counted in `dropped_iterations`), never delayed, so a slow system cannot pass by
 * receiving less load.
 *
 * Iteration k (k = 1, 2, …) starts when the area under the rate curve reaches k, as in k6's
 * executor. The run is bounded: after the last stage, iterations still running get `gracefulStop`
 * to finish; then their signal is aborted and they are counted as interrupted.
 */
import { seconds, type ArrivalProfile, type Stage } from '../lib/profiles.ts';

/** One linear piece of the rate curve: from `from` to `to` iterations/s over [start, start+duration). */
interface Segment {
  start: number;
  duration: number;
  from: number;
  to: number;
}

export class Schedule {
  readonly segments: Segment[];
  readonly duration: number;

  /** `scale` multiplies every stage's duration (rates unchanged): shortened runs for tests. */
  constructor(profile: Pick<ArrivalProfile, 'startRate' | 'stages' | 'timeUnit'>, scale = 1) {
    if (!(scale > 0)) throw new Error(`duration scale must be > 0, got ${scale}`);
    const unit = seconds(profile.timeUnit ?? '1s');
    let start = 0;
    let rate = profile.startRate / unit;
    this.segments = profile.stages.map((s: Stage) => {
      const duration = seconds(s.duration) * scale;
      const seg = { start, duration, from: rate, to: s.target / unit };
      start += duration;
      rate = seg.to;
      return seg;
    });
    this.duration = start;
  }

  /** Target rate (iterations/s) at time t. */
  rateAt(t: number): number {
    for (const s of this.segments) {
      if (t < s.start + s.duration || s === this.segments.at(-1)) {
        if (s.duration === 0) return s.to;
        const f = Math.min(1, Math.max(0, (t - s.start) / s.duration));
        return s.from + (s.to - s.from) * f;
      }
    }
    return 0;
  }

  /** Iterations due in [0, t]: the area under the rate curve. */
  areaUntil(t: number): number {
    let area = 0;
    for (const s of this.segments) {
      if (t <= s.start) break;
      const d = Math.min(t - s.start, s.duration);
      if (s.duration > 0) area += s.from * d + ((s.to - s.from) * d * d) / (2 * s.duration);
    }
    return area;
  }

  /** Expected iterations of the whole run. */
  get total(): number {
    return Math.floor(this.areaUntil(this.duration) + 1e-9);
  }

  /** Start times (seconds) of every iteration, in order. */
  *starts(): Generator<number> {
    let k = 1;
    let before = 0; // area of the segments already passed
    for (const s of this.segments) {
      const area = s.duration > 0 ? ((s.from + s.to) / 2) * s.duration : 0;
      while (k <= before + area + 1e-9) {
        const a = k - before; // area needed inside this segment
        const slope = s.duration > 0 ? (s.to - s.from) / s.duration : 0;
        // solve from·τ + slope·τ²/2 = a for τ ≥ 0 (the stable form of the quadratic's root)
        const disc = Math.max(0, s.from * s.from + 2 * slope * a);
        const denom = s.from + Math.sqrt(disc);
        const tau = denom > 0 ? (2 * a) / denom : s.duration;
        yield s.start + Math.min(s.duration, Math.max(0, tau));
        k++;
      }
      before += area;
    }
  }
}

export interface IterationContext {
  /** 1-based VU number (k6 `__VU`). */
  vu: number;
  /** Iteration number of the run, 0-based (k6 `__ITER` counts per VU; this counts per run). */
  iteration: number;
  /** Aborted when the run is cut (graceful stop over, or a threshold aborted the run). */
  signal: AbortSignal;
}

interface ExecutorEvents {
  /** An iteration started on a VU. */
  started?(at: number): void;
  /** No VU was free: the iteration was dropped. */
  dropped?(at: number): void;
  /** An iteration finished (ok: it did not throw). */
  finished?(durationMs: number, ok: boolean, error?: unknown): void;
  /** An iteration was still running when the run was cut. */
  interrupted?(): void;
  /** The pool grew (allocated VUs). */
  vus?(busy: number, allocated: number): void;
}

export interface ExecutorOptions {
  profile: Pick<ArrivalProfile, 'startRate' | 'stages' | 'timeUnit' | 'preAllocatedVUs' | 'maxVUs'>;
  iteration: (ctx: IterationContext) => Promise<void>;
  /** Multiplies stage durations. */
  durationScale?: number;
  /** Seconds iterations still running after the last stage may take (k6 default 30 s). */
  gracefulStop?: number;
  /** Stops starting iterations and cuts the running ones at once (a threshold abort, Ctrl-C). */
  signal?: AbortSignal;
  events?: ExecutorEvents;
  /** Milliseconds clock (tests); performance.now by default. */
  now?: () => number;
}

export interface ExecutorResult {
  started: number;
  dropped: number;
  completed: number;
  failed: number;
  interrupted: number;
  maxAllocatedVUs: number;
  /** Seconds from start to the last stage's end (or the abort). */
  scheduleSeconds: number;
  /** Seconds from start to the end, graceful stop included. */
  elapsedSeconds: number;
  aborted: boolean;
}

/** A timer that resolves early when the signal aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0 || signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Live view of the executor, for the progress line. */
export interface ExecutorState {
  started: number;
  dropped: number;
  busy: number;
  allocated: number;
}

export class ArrivalRateExecutor {
  readonly schedule: Schedule;
  readonly state: ExecutorState = { started: 0, dropped: 0, busy: 0, allocated: 0 };
  private readonly opts: ExecutorOptions;

  constructor(opts: ExecutorOptions) {
    const { preAllocatedVUs, maxVUs } = opts.profile;
    if (!(preAllocatedVUs >= 0) || !(maxVUs >= 1) || maxVUs < preAllocatedVUs)
      throw new Error(`bad VU pool: preAllocatedVUs ${preAllocatedVUs}, maxVUs ${maxVUs}`);
    this.opts = opts;
    this.schedule = new Schedule(opts.profile, opts.durationScale ?? 1);
  }

  async run(): Promise<ExecutorResult> {
    const now = this.opts.now ?? (() => performance.now());
    const { preAllocatedVUs, maxVUs } = this.opts.profile;
    const events = this.opts.events ?? {};
    const outer = this.opts.signal;
    const cut = new AbortController(); // aborts the iterations still running
    const onOuterAbort = (): void => cut.abort(outer?.reason);
    outer?.addEventListener('abort', onOuterAbort, { once: true });

    const free: number[] = [];
    for (let vu = preAllocatedVUs; vu >= 1; vu--) free.push(vu);
    const st = this.state;
    st.allocated = preAllocatedVUs;
    const result: ExecutorResult = {
      started: 0,
      dropped: 0,
      completed: 0,
      failed: 0,
      interrupted: 0,
      maxAllocatedVUs: preAllocatedVUs,
      scheduleSeconds: 0,
      elapsedSeconds: 0,
      aborted: false,
    };
    const running = new Set<Promise<void>>();
    const t0 = now();
    let n = 0;
    let finalized = false;

    const launch = (at: number): void => {
      let vu = free.pop();
      if (vu === undefined && st.allocated < maxVUs) vu = ++st.allocated;
      if (vu === undefined) {
        result.dropped++;
        st.dropped++;
        events.dropped?.(at);
        return;
      }
      result.maxAllocatedVUs = Math.max(result.maxAllocatedVUs, st.allocated);
      result.started++;
      st.started++;
      st.busy++;
      events.started?.(at);
      events.vus?.(st.busy, st.allocated);
      const began = now();
      const ctx: IterationContext = { vu, iteration: n++, signal: cut.signal };
      const p = (async () => {
        let ok = true;
        let error: unknown;
        try {
          await this.opts.iteration(ctx);
        } catch (err) {
          ok = false;
          error = err;
        }
        if (finalized) return; // still running after the run was given up: already counted as interrupted
        if (cut.signal.aborted) {
          result.interrupted++;
          events.interrupted?.();
        } else {
          if (ok) result.completed++;
          else result.failed++;
          events.finished?.(now() - began, ok, error);
        }
        st.busy--;
        free.push(vu);
        events.vus?.(st.busy, st.allocated);
      })();
      running.add(p);
      void p.finally(() => running.delete(p));
    };

    for (const startAt of this.schedule.starts()) {
      if (outer?.aborted) break;
      const due = t0 + startAt * 1000;
      const wait = due - now();
      if (wait > 1) await sleep(wait, outer);
      if (outer?.aborted) break;
      launch(due);
    }
    // the schedule's tail: wait until the last stage ends even if no iteration is due in it
    if (!outer?.aborted) await sleep(t0 + this.schedule.duration * 1000 - now(), outer);
    result.scheduleSeconds = (now() - t0) / 1000;
    result.aborted = outer?.aborted === true;

    if (running.size > 0 && !cut.signal.aborted) {
      const grace = (this.opts.gracefulStop ?? 30) * 1000;
      const graceOver = new AbortController();
      const allDone = Promise.all([...running]).then(() => graceOver.abort());
      await Promise.race([allDone, sleep(grace, graceOver.signal)]);
      graceOver.abort();
      if (running.size > 0) cut.abort(new Error('graceful stop is over'));
    }
    // iterations honour their signal; one that does not is given up after a few seconds
    if (running.size > 0) {
      const settled = new AbortController();
      await Promise.race([Promise.all([...running]).then(() => settled.abort()), sleep(5000, settled.signal)]);
      settled.abort();
    }
    finalized = true;
    for (let i = 0; i < running.size; i++) {
      result.interrupted++;
      events.interrupted?.();
    }
    outer?.removeEventListener('abort', onOuterAbort);
    result.elapsedSeconds = (now() - t0) / 1000;
    return result;
  }
}
