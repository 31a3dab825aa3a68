/**
 * `npm run bench`: the platform benchmarks in sequence, each its own process with modest defaults
 * (about a quarter of an hour in all), then every performance target (scripts/bench/targets.ts) in
 * one table: what was measured, its ratio against a reference measured in the same run (the
 * machine is shared and noisy), and whether it is met. A target no bench reported is listed as not
 * measured. The exit code is 0 when every bench ran; the verdicts are the table's.
 *
 *   bench:ttft       CPU and commits per turn, capacity (closed model), added TTFT p99 at half of it (open model)
 *   bench:telemetry  server CPU per op with telemetry on (10% and 100% sampling) vs all off
 *   bench:rest       gateway REST read vs fastify + pg doing the same query, and vs bare fastify hello-world
 *   bench:llm-proxy  tokens/s through the proxy vs direct at 200 streams, the proxy's own overhead p99
 *   bench:ws-idle    gateway memory per idle WebSocket at 20,000
 *
 * Settings from the environment win over the defaults here (BENCH_DATABASE_URL, BENCH_REDIS_URL,
 * and each bench's own, see its header); BENCH_ONLY=rest,ttft runs a subset.
 */
import { spawn } from 'node:child_process';
import { REPO_ROOT } from '../../test/helpers/processes.ts';
import { waitForQuietMachine } from './platform.ts';
import { parseTarget, targetTable, type TargetResult } from './targets.ts';

const BENCHES: { name: string; script: string; defaults: Record<string, string> }[] = [
  {
    name: 'ttft',
    script: 'scripts/bench/ttft.ts',
    defaults: { BENCH_ROUNDS: '4', BENCH_TURNS: '5', BENCH_OPEN_SECONDS: '15', BENCH_OPEN_ROUNDS: '2' },
  },
  { name: 'rest', script: 'scripts/bench/rest.ts', defaults: { BENCH_SECONDS: '5', BENCH_ROUNDS: '2' } },
  {
    name: 'telemetry',
    script: 'scripts/bench/telemetry.ts',
    // the targets' three platforms alone: the breakdown's three more, idle while another is
    // measured, still make PostgreSQL, Redis and the CPUs busier in every window (all off read
    // 3.3-3.9 ms per op with three platforms up, 4.9-7.0 ms with six)
    defaults: { BENCH_SECONDS: '6', BENCH_ROUNDS: '6', BENCH_WARMUP_SECONDS: '3', BENCH_TELEMETRY_BREAKDOWN: '0' },
  },
  { name: 'llm-proxy', script: 'scripts/bench/llm-proxy.ts', defaults: { BENCH_ROUNDS: '6', BENCH_SECONDS: '6' } },
  { name: 'ws-idle', script: 'scripts/bench/ws-idle.ts', defaults: {} },
];

const only = process.env.BENCH_ONLY?.split(',').map((s) => s.trim());
const results: string[] = [];
const targets: TargetResult[] = [];
const failures: string[] = [];
const t0 = performance.now();
for (const b of BENCHES) {
  if (only && !only.includes(b.name)) continue;
  console.log(`\n=== bench:${b.name} ===`);
  await waitForQuietMachine(`bench:${b.name}`); // not on what the bench before left running
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
        const t = parseTarget(line);
        if (t) targets.push(t);
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
const table = targetTable(targets);
console.log(`\n=== targets: ${table.met} of ${table.total} met ===\n${table.text}`);
process.exitCode = failures.length ? 1 : 0;
