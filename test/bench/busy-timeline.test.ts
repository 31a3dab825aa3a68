/**
 * BusyTimeline (scripts/bench/platform.ts): besides the machine's busy CPUs, it keeps the CPU time
 * of the processes under test, so that bench:ttft can say how much of the CPUs others used while
 * its slowest turns waited. A process the pid list names only later (a new PostgreSQL backend)
 * counts with all of its CPU time.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { BusyTimeline } from '../../scripts/bench/platform.ts';

const onLinux = process.platform === 'linux';

/** A child that burns `ms` of CPU, then says how much it used in all and waits to be told to exit. */
async function burner(ms: number): Promise<{ pid: number; reported: number; exit: () => Promise<void> }> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `const used = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
       while (used() < ${ms}) {}
       console.log(used());
       process.stdin.resume();`,
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  return {
    pid: child.pid!,
    reported: Number(String(line).trim()),
    exit: async () => {
      child.stdin!.end();
      await once(child, 'exit');
    },
  };
}

/** Waits until a measured sample after `at` was taken (a window ends at the first measured sample after it). */
async function sampledAfter(timeline: BusyTimeline, from: number, at: number): Promise<void> {
  while (!Number.isFinite(timeline.measuredMs(from, at))) await new Promise((r) => setTimeout(r, 20));
}

describe.skipIf(!onLinux)('BusyTimeline', () => {
  it("counts a measured process's CPU time, found after the start, as the process itself reports it", async () => {
    const pids: number[] = [];
    const timeline = new BusyTimeline(2, () => pids);
    timeline.start(); // its first sample: the window starts there
    const from = performance.now();
    const child = await burner(300);
    pids.push(child.pid); // listed only once it has burned its CPU: it counts from its start
    const to = performance.now();
    await sampledAfter(timeline, from, to);
    timeline.stop();
    await child.exit();
    expect(child.reported).toBeGreaterThanOrEqual(300);
    // /proc counts in ticks of 10 ms; the child used a little more after it reported
    const measured = timeline.measuredMs(from, to);
    expect(measured).toBeGreaterThanOrEqual(child.reported - 20);
    expect(measured).toBeLessThanOrEqual(child.reported + 40);
  });

  it('a process outside the measured ones shows in outside(), a measured one does not', async () => {
    const pids: number[] = [];
    const timeline = new BusyTimeline(2, () => pids);
    timeline.start();
    const from = performance.now();
    const outsider = await burner(300);
    const to = performance.now();
    await sampledAfter(timeline, from, to);
    timeline.stop();
    await outsider.exit();
    // everything the machine's processes were charged, less the measured (none): the outsider's CPU at least
    expect(timeline.processesMs(from, to) - timeline.measuredMs(from, to)).toBeGreaterThanOrEqual(outsider.reported - 20);
    expect(timeline.measuredMs(from, to)).toBe(0);
    expect(timeline.outside(from, to)).toBeGreaterThan(0);
  });

  it('without measured processes, outside() and measuredMs() are not a number', () => {
    const timeline = new BusyTimeline(2);
    timeline.start();
    const from = performance.now();
    timeline.stop();
    expect(timeline.outside(from, performance.now())).toBeNaN();
    expect(timeline.measuredMs(from, performance.now())).toBeNaN();
  });
});
