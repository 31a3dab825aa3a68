/**
 * The driver's open-model executor: the schedule follows the stages like k6's ramping-arrival-rate
 * (iteration k starts when the area under the rate curve reaches k), and an iteration with no free
 * VU is dropped and counted, never delayed; the run is bounded by the stages plus the graceful stop.
 */
import { describe, expect, it } from 'vitest';
import { ArrivalRateExecutor, Schedule } from '../driver/arrival.ts';
import { PROFILES, profile, SCENARIOS, seconds } from '../lib/profiles.ts';

const perSecond = (starts: number[], secondsTotal: number): number[] => {
  const counts = new Array<number>(secondsTotal).fill(0);
  for (const t of starts) counts[Math.min(secondsTotal - 1, Math.floor(t))]! += 1;
  return counts;
};

describe('arrival schedule', () => {
  it('ramps linearly: 0 → 10/s over 10 s starts 50 iterations, about s + 0.5 in second s', () => {
    const s = new Schedule({ startRate: 0, timeUnit: '1s', stages: [{ duration: '10s', target: 10 }] });
    const starts = [...s.starts()];
    expect(starts).toHaveLength(50);
    expect(s.total).toBe(50);
    // area t²/2 reaches k at t = √(2k)
    for (const [i, t] of starts.entries()) expect(t).toBeCloseTo(Math.sqrt(2 * (i + 1)), 9);
    const counts = perSecond(starts, 10);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(50);
    for (const [sec, c] of counts.entries()) expect(Math.abs(c - (sec + 0.5))).toBeLessThanOrEqual(1);
    expect(s.rateAt(5)).toBeCloseTo(5);
  });

  it('spreads a fractional constant rate: 2.5/s over 4 s is 10 iterations 0.4 s apart', () => {
    const s = new Schedule({ startRate: 2.5, timeUnit: '1s', stages: [{ duration: '4s', target: 2.5 }] });
    const starts = [...s.starts()];
    expect(starts).toHaveLength(10);
    for (const [i, t] of starts.entries()) expect(t).toBeCloseTo(0.4 * (i + 1), 9);
    expect(perSecond(starts, 4)).toEqual([2, 2, 3, 3]); // 0.4 0.8 | 1.2 1.6 | 2.0 2.4 2.8 | 3.2 3.6 4.0
  });

  it('follows several stages, ramping up, holding and down to zero', () => {
    const s = new Schedule({
      startRate: 0,
      timeUnit: '1s',
      stages: [
        { duration: '4s', target: 4 },
        { duration: '4s', target: 4 },
        { duration: '4s', target: 0 },
      ],
    });
    const starts = [...s.starts()];
    expect(starts).toHaveLength(8 + 16 + 8);
    expect(perSecond(starts, 12).slice(4, 8)).toEqual([4, 4, 4, 4]);
    for (let i = 1; i < starts.length; i++) expect(starts[i]!).toBeGreaterThan(starts[i - 1]!);
    expect(starts.at(-1)!).toBeLessThanOrEqual(12);
    expect(s.rateAt(10)).toBeCloseTo(2);
    expect(s.rateAt(20)).toBe(0);
  });

  it('plans every scenario × profile with the area of its rate curve, and scales durations', () => {
    for (const sc of SCENARIOS) {
      for (const p of PROFILES) {
        const prof = profile(sc, p);
        const s = new Schedule(prof);
        expect(s.duration).toBe(prof.stages.reduce((a, st) => a + seconds(st.duration), 0));
        expect(s.total).toBe(Math.floor(s.areaUntil(s.duration) + 1e-9));
      }
    }
    const smoke = new Schedule(profile('api', 'smoke'), 0.3);
    expect(smoke.duration).toBeCloseTo(3);
    expect([...smoke.starts()]).toHaveLength(30); // 10/s for 3 s
  });
});

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(new Error('aborted'));
    });
  });

describe('arrival-rate executor', () => {
  it('drops the iterations that find no free VU instead of delaying them', async () => {
    const t0 = performance.now();
    const startedAt: number[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    const dropped: number[] = [];
    const exec = new ArrivalRateExecutor({
      // 20/s for 1 s with at most 3 VUs, each iteration 300 ms: about 10 start, the rest are dropped
      profile: { startRate: 20, timeUnit: '1s', preAllocatedVUs: 2, maxVUs: 3, stages: [{ duration: '1s', target: 20 }] },
      gracefulStop: 5,
      events: { dropped: (at) => dropped.push(at) },
      iteration: async () => {
        startedAt.push(performance.now() - t0);
        maxInFlight = Math.max(maxInFlight, ++inFlight);
        await sleep(300);
        inFlight--;
      },
    });
    const r = await exec.run();
    expect(r.started + r.dropped).toBe(20);
    expect(r.dropped).toBeGreaterThanOrEqual(6);
    expect(r.started).toBeGreaterThanOrEqual(6);
    expect(dropped).toHaveLength(r.dropped);
    expect(maxInFlight).toBe(3);
    expect(r.maxAllocatedVUs).toBe(3);
    expect(r.completed).toBe(r.started);
    expect(r.interrupted).toBe(0);
    // none waited for a VU: every start falls within the 1 s schedule (waiting for VUs would
    // have taken 20 × 300 ms / 3 = 2 s), and the run waited for the last ones and no longer
    for (const t of startedAt) expect(t).toBeLessThan(1200);
    expect(r.elapsedSeconds).toBeGreaterThanOrEqual(1);
    expect(r.elapsedSeconds).toBeLessThan(1.9);
  });

  it('starts every iteration when VUs suffice, growing the pool from preAllocatedVUs up to what it needs', async () => {
    let vusSeen = 0;
    const exec = new ArrivalRateExecutor({
      profile: { startRate: 10, timeUnit: '1s', preAllocatedVUs: 1, maxVUs: 10, stages: [{ duration: '1s', target: 10 }] },
      events: { vus: (_busy, allocated) => (vusSeen = Math.max(vusSeen, allocated)) },
      iteration: () => sleep(150),
    });
    const r = await exec.run();
    expect(r).toMatchObject({ started: 10, dropped: 0, completed: 10, failed: 0 });
    expect(r.maxAllocatedVUs).toBeGreaterThan(1);
    expect(r.maxAllocatedVUs).toBeLessThanOrEqual(5);
    expect(vusSeen).toBe(r.maxAllocatedVUs);
  });

  it('cuts iterations still running when the graceful stop is over, and counts them as interrupted', async () => {
    const interrupted: number[] = [];
    let sawAbort = 0;
    const exec = new ArrivalRateExecutor({
      profile: { startRate: 5, timeUnit: '1s', preAllocatedVUs: 5, maxVUs: 5, stages: [{ duration: '0.6s', target: 5 }] },
      gracefulStop: 0.3,
      events: { interrupted: () => interrupted.push(1) },
      iteration: async (ctx) => {
        await sleep(60_000, ctx.signal).catch(() => sawAbort++);
      },
    });
    const began = performance.now();
    const r = await exec.run();
    expect(r.started).toBe(3);
    expect(r.interrupted).toBe(3);
    expect(interrupted).toHaveLength(3);
    expect(sawAbort).toBe(3);
    expect(r.completed).toBe(0);
    expect((performance.now() - began) / 1000).toBeLessThan(0.6 + 0.3 + 1);
  });

  it('counts an iteration that throws as failed, and stops at once when its signal aborts', async () => {
    const outer = new AbortController();
    let n = 0;
    const exec = new ArrivalRateExecutor({
      profile: { startRate: 10, timeUnit: '1s', preAllocatedVUs: 5, maxVUs: 5, stages: [{ duration: '10s', target: 10 }] },
      signal: outer.signal,
      iteration: async () => {
        if (++n === 3) outer.abort();
        if (n % 2 === 0) throw new Error('boom');
      },
    });
    const r = await exec.run();
    expect(r.aborted).toBe(true);
    expect(r.started).toBe(3);
    expect(r.failed).toBe(1);
    expect(r.elapsedSeconds).toBeLessThan(2);
  });
});
