/**
 * `node scripts/bench/profile-top.ts <dir> [N]`: where the CPU went in the V8 CPU profiles a
 * benchmark run wrote with BENCH_CPU_PROF=<dir> (one folder per service, `.cpuprofile` files).
 * Per service: its sampled time, the N functions with the most self time (default 15), and the
 * same time by package (node_modules/<package>, node: internals, the project's own files,
 * garbage collection, idle), so that a lead ("the tracing SDK", "pg's parser") has a figure.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/** The package a frame's file belongs to: node_modules/<@scope/name>, `node:` internals, or the project's folder. */
function packageOf(url: string, functionName: string): string {
  if (functionName === '(garbage collector)') return '(gc)';
  if (functionName === '(idle)' || functionName === '(program)' || functionName === '(root)') return functionName;
  if (!url) return '(native)';
  const modules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (modules) return modules[1]!;
  if (url.startsWith('node:')) return 'node:';
  const own = /\/(services\/[^/]+|packages\/[^/]+|scripts|test)\//.exec(url);
  return own ? own[1]! : url;
}

/** Self time per node id in ms, from the samples and their time deltas. */
function selfTimes(p: CpuProfile): Map<number, number> {
  const self = new Map<number, number>();
  const samples = p.samples ?? [];
  const deltas = p.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    // a sample's delta is the time since the previous one: it belongs to the previous sample
    const ms = (deltas[i + 1] ?? 0) / 1000;
    self.set(samples[i]!, (self.get(samples[i]!) ?? 0) + ms);
  }
  return self;
}

function top(entries: Map<string, number>, n: number, total: number): string[] {
  return [...entries]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, ms]) => `  ${((ms / total) * 100).toFixed(1).padStart(5)}%  ${ms.toFixed(0).padStart(7)} ms  ${k}`);
}

function summarize(service: string, files: string[], n: number): void {
  const byFunction = new Map<string, number>();
  const byPackage = new Map<string, number>();
  let total = 0;
  for (const file of files) {
    const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
    const nodes = new Map(p.nodes.map((x) => [x.id, x]));
    for (const [id, ms] of selfTimes(p)) {
      const f = nodes.get(id)!.callFrame;
      const pkg = packageOf(f.url, f.functionName);
      const where = f.url ? `${f.url.replace(/^file:\/\/.*?\/(node_modules|services|packages|scripts)\//, '$1/')}:${f.lineNumber + 1}` : '';
      const key = `${f.functionName || '(anonymous)'} ${where}`.trim();
      byFunction.set(key, (byFunction.get(key) ?? 0) + ms);
      byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + ms);
      total += ms;
    }
  }
  const busy = total - (byPackage.get('(idle)') ?? 0);
  console.log(`\n${service}: ${(total / 1000).toFixed(1)} s sampled, ${(busy / 1000).toFixed(1)} s not idle (${files.length} profile(s))`);
  byFunction.delete('(idle)');
  byPackage.delete('(idle)');
  console.log(' by package (share of the time not idle):');
  for (const line of top(byPackage, n, busy)) console.log(line);
  console.log(' by function (self time):');
  for (const line of top(byFunction, n, busy)) console.log(line);
}

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node scripts/bench/profile-top.ts <dir written with BENCH_CPU_PROF> [N]');
  process.exit(2);
}
const n = Number(process.argv[3] ?? 15);
const services = readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory());
if (!services.length) {
  console.error(`${dir}: no service folders with .cpuprofile files (run a benchmark with BENCH_CPU_PROF=${dir})`);
  process.exit(1);
}
for (const s of services) {
  const files = readdirSync(path.join(dir, s.name))
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => path.join(dir, s.name, f));
  if (files.length) summarize(s.name, files, n);
}
