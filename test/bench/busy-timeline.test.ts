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

describe.skipIf(!onLinux)('BusyTimeline', () => {
  it("counts a measured process's CPU time, found after the start, as the process itself reports it", async () => {
    const pids: number[] = [];
    const timeline = new BusyTimeline(2, () => pids);
    timeline.start(); // its first sample: the window starts there
    const from = performance.now();
    // burns 300 ms of CPU, says how much it used in all, then waits to be told to exit
    const child = spawn(
      process.execPath,
      [
        '-e',
        `const used = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
         while (used() < 300) {}
         console.log(used());
         process.stdin.resume();`,
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    pids.push(child.pid!);
    const [line] = (await once(child.stdout!, 'data')) as [Buffer];
    const reported = Number(String(line).trim());
    // the list is asked for again every 50 samples: wait until the child was found and read (a
    // window ends at a measured sample after it: hence one that ended 50 ms ago)
    while (!(timeline.measuredMs(from, performance.now() - 50) > 0)) await new Promise((r) => setTimeout(r, 20));
    const to = performance.now();
    timeline.stop(); // its last sample closes the window
    child.stdin!.end();
    await once(child, 'exit');
    const measured = timeline.measuredMs(from, to);
    expect(reported).toBeGreaterThanOrEqual(300);
    // /proc counts in ticks of 10 ms; the child used a little more after it reported
    expect(measured).toBeGreaterThanOrEqual(reported - 20);
    expect(measured).toBeLessThanOrEqual(reported + 40);
    const outside = timeline.outside(from, to);
    expect(outside).toBeGreaterThanOrEqual(0);
    expect(outside).toBeLessThanOrEqual(1);
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
