/**
 * `npm run bench:gc`: reads what `--trace-gc` made each service print (BENCH_NODE_ARGS,
 * BENCH_SERVICE_LOGS) and sums up the pauses per service and kind. A real node with --trace-gc that
 * allocates until it has scavenged and been told to collect in full (gc() through --expose-gc).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/processes.ts';

const run = promisify(execFile);

describe('bench:gc (scripts/bench/gc-pauses.ts)', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it("counts a service's scavenges and full collections from its --trace-gc output", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'codelab-gc-'));
    dirs.push(dir);
    // young objects until several scavenges, then two full collections
    const script = `
      let keep = [];
      for (let i = 0; i < 2_000_000; i++) { keep.push({ i, s: 'x' + i }); if (keep.length > 1000) keep = []; }
      gc(); gc();`;
    const { stdout } = await run(process.execPath, ['--trace-gc', '--expose-gc', '--max-semi-space-size=1', '-e', script]);
    await writeFile(path.join(dir, 'runtime.log'), `{"level":"info","msg":"not a gc line"}\n${stdout}`);
    const scavenges = stdout.split('\n').filter((l) => / ms: Scavenge /.test(l)).length;
    expect(scavenges, stdout).toBeGreaterThan(2);
    const out = (await run(process.execPath, ['scripts/bench/gc-pauses.ts', dir], { cwd: REPO_ROOT })).stdout;
    expect(out).toMatch(/^runtime:$/m);
    expect(out).toMatch(
      new RegExp(
        `^  Scavenge +${scavenges} pauses, mean [\\d.]+ ms, p99 [\\d.]+ ms, max [\\d.]+ ms, \\d+ of 10 ms or more; [\\d.]+ s in all$`,
        'm',
      ),
    );
    expect(out).toMatch(/^ {2}Mark-Compact +[2-9]\d* pauses, /m);
  });

  it('refuses a folder without --trace-gc lines, naming the variables that write them', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'codelab-gc-'));
    dirs.push(dir);
    await writeFile(path.join(dir, 'gateway.log'), '{"level":"info","msg":"listening"}\n');
    const failed = await run(process.execPath, ['scripts/bench/gc-pauses.ts', dir], { cwd: REPO_ROOT }).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect(failed).toMatchObject({ code: 1 });
    expect((failed as { stderr: string }).stderr).toContain('BENCH_NODE_ARGS=--trace-gc BENCH_SERVICE_LOGS=');
  });
});
