/**
 * `npm run bench:profile`: reads the CPU profiles that BENCH_CPU_PROF makes a service write, and
 * names the function and the package the time went to. A real profile of a real process: a node
 * that spins in one named function until the profiler has sampled it well (a condition on the
 * profile's own samples, not on the machine's speed).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/processes.ts';

const run = promisify(execFile);

describe('bench:profile (scripts/bench/profile-top.ts)', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it("prints each service's busy time by package and the function that used it", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'codelab-prof-'));
    dirs.push(dir);
    // busy for 400 ms of its own CPU time (process.cpuUsage): hundreds of samples however fast the machine;
    // a million steps between two clock reads, so that reading the clock stays a small share of the
    // samples (with 10,000 it was half of them on a loaded CI machine, and came first)
    const script = `
      function spinInHotFunction() {
        const start = process.cpuUsage().user;
        let x = 0;
        while (process.cpuUsage().user - start < 400_000) for (let i = 0; i < 1_000_000; i++) x = (x * 31 + i) % 1_000_003;
        return x;
      }
      spinInHotFunction();`;
    await run(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${path.join(dir, 'spinner')}`, '-e', script]);
    const { stdout } = await run(process.execPath, ['scripts/bench/profile-top.ts', dir, '5'], { cwd: REPO_ROOT });
    expect(stdout).toMatch(/^spinner: [\d.]+ s sampled, [\d.]+ s not idle \(1 profile\(s\)\)$/m);
    const byFunction = stdout.slice(stdout.indexOf(' by function'));
    const first = byFunction.split('\n')[1] ?? '';
    expect(first, stdout).toContain('spinInHotFunction');
    const share = Number(/^\s*([\d.]+)%/.exec(first)?.[1]);
    expect(share, stdout).toBeGreaterThan(50);
  });

  it('refuses a folder without profiles, naming the variable that writes them', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'codelab-prof-'));
    dirs.push(dir);
    const failed = await run(process.execPath, ['scripts/bench/profile-top.ts', dir], { cwd: REPO_ROOT }).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect(failed).toMatchObject({ code: 1 });
    expect((failed as { stderr: string }).stderr).toContain('BENCH_CPU_PROF');
  });
});
