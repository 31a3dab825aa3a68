/**
 * `npm run bench`: the four platform benchmarks in sequence, each its own process with modest
 * defaults (a few minutes in all), then their results together. Every figure is a ratio against
 * a reference measured in the same run (the machine is shared and noisy):
 *
 *   bench:rest       gateway REST read vs a bare fastify hello-world (target >= 25% of its req/s)
 *   bench:telemetry  throughput with telemetry on vs off (target <= 10% cost at 100% sampling, <= 5% at 10%)
 *   bench:ttft       platform-added time to first token at 100 conversations vs the mock direct (target p99 < 10 ms)
 *   bench:ws-idle    gateway memory per idle WebSocket at 10,000 (target < 30 KiB)
 *
 * Settings from the environment win over the defaults here (BENCH_DATABASE_URL, BENCH_REDIS_URL,
 * and each bench's own, see its header); BENCH_ONLY=rest,ttft runs a subset.
 */
import { spawn } from 'node:child_process';
import { REPO_ROOT } from '../../test/helpers/processes.ts';

const BENCHES: { name: string; script: string; defaults: Record<string, string> }[] = [
  { name: 'rest', script: 'scripts/bench/rest.ts', defaults: { BENCH_SECONDS: '5', BENCH_ROUNDS: '2' } },
  {
    name: 'telemetry',
    script: 'scripts/bench/telemetry.ts',
    defaults: { BENCH_SECONDS: '6', BENCH_ROUNDS: '2', BENCH_WARMUP_SECONDS: '3' },
  },
  { name: 'ttft', script: 'scripts/bench/ttft.ts', defaults: { BENCH_ROUNDS: '4', BENCH_TURNS: '5' } },
  { name: 'ws-idle', script: 'scripts/bench/ws-idle.ts', defaults: { BENCH_WS_CONNECTIONS: '10000' } },
];

const only = process.env.BENCH_ONLY?.split(',').map((s) => s.trim());
const results: string[] = [];
const failures: string[] = [];
const t0 = performance.now();
for (const b of BENCHES) {
  if (only && !only.includes(b.name)) continue;
  console.log(`\n=== bench:${b.name} ===`);
  const started = performance.now();
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [k, v] of Object.entries(b.defaults)) if (!process.env[k]) env[k] = v;
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn(process.execPath, [b.script], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'inherit'] });
    let pending = '';
    child.stdout.on('data', (d: Buffer) => {
      process.stdout.write(d);
      pending += d.toString();
      let i: number;
      while ((i = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, i);
        pending = pending.slice(i + 1);
        if (line.startsWith('RESULT ')) results.push(line.slice('RESULT '.length));
      }
    });
    child.once('exit', (c) => resolve(c));
  });
  console.log(`(bench:${b.name} took ${((performance.now() - started) / 1000).toFixed(0)} s)`);
  if (code !== 0) failures.push(`bench:${b.name} exited with ${code}`);
}
console.log(`\n=== results (${((performance.now() - t0) / 60_000).toFixed(1)} min) ===`);
for (const r of results) console.log(r);
for (const f of failures) console.log(`FAILED: ${f}`);
process.exitCode = failures.length ? 1 : 0;
