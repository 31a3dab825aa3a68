/**
 * The performance targets (issue 16) as the benchmarks report them. A bench prints one line per
 * target it measured (`TARGET {json}`); `npm run bench` gathers them into one table, naming every
 * target of the list below, with "not measured" for those no bench reported (a bench that failed
 * or was left out with BENCH_ONLY).
 */

export interface TargetResult {
  /** One of TARGETS' ids. */
  id: string;
  /** What was measured, e.g. "10.4 ms CPU per turn". */
  measured: string;
  /** The same figure against the reference measured in the same run, e.g. "= 212 bare fastify requests". */
  ratio: string;
  met: boolean;
}

/** Every target, in the order the summary lists them, with its goal as the issue words it. */
export const TARGETS: readonly { id: string; bench: string; what: string; goal: string }[] = [
  {
    id: 'cpu-per-turn',
    bench: 'ttft',
    what: 'CPU per turn (30 tokens, all services + PostgreSQL + Redis, telemetry off)',
    goal: '<= 5.5 ms',
  },
  { id: 'commits-per-turn', bench: 'ttft', what: 'database commits per plain turn', goal: '<= 2' },
  { id: 'ttft-open', bench: 'ttft', what: 'platform-added TTFT p99, open arrivals at half of capacity', goal: '< 10 ms' },
  { id: 'telemetry-10', bench: 'telemetry', what: 'server CPU per op, telemetry on at 10% sampling vs all off', goal: '<= +10%' },
  { id: 'telemetry-100', bench: 'telemetry', what: 'server CPU per op, telemetry on at 100% sampling vs all off', goal: '<= +20%' },
  { id: 'rest-vs-fastify-pg', bench: 'rest', what: 'REST read req/s vs one-process fastify + pg doing the same query', goal: '>= 50%' },
  { id: 'rest-vs-hello', bench: 'rest', what: 'REST read req/s vs bare fastify hello-world', goal: '>= 10%' },
  { id: 'llm-proxy-tokens', bench: 'llm-proxy', what: 'tokens/s through the llm-proxy vs direct, 200 streams', goal: '>= 85%' },
  { id: 'llm-proxy-overhead', bench: 'llm-proxy', what: 'llm_proxy_overhead_seconds p99', goal: '<= 0.5 ms' },
  { id: 'ws-idle', bench: 'ws-idle', what: 'idle WebSockets on one gateway process, memory each', goal: '20,000 at <= 10 KiB' },
];

const PREFIX = 'TARGET ';

/** Prints a measured target for `npm run bench` to collect (and for a reader of the bench alone). */
export function reportTarget(t: TargetResult): void {
  if (!TARGETS.some((x) => x.id === t.id)) throw new Error(`unknown target ${t.id}`);
  console.log(`${PREFIX}${JSON.stringify(t)}`);
}

/** The target a bench's output line reports, if it is one. */
export function parseTarget(line: string): TargetResult | undefined {
  if (!line.startsWith(PREFIX)) return undefined;
  const t = JSON.parse(line.slice(PREFIX.length)) as TargetResult;
  return TARGETS.some((x) => x.id === t.id) ? t : undefined;
}

/** The summary table: every target, measured or not; `met` counts only those measured and met. */
export function targetTable(results: readonly TargetResult[]): { text: string; met: number; total: number } {
  const rows = TARGETS.map((t) => {
    const r = [...results].reverse().find((x) => x.id === t.id);
    return [
      t.what,
      t.goal,
      r ? r.measured : 'not measured',
      r ? r.ratio : `(bench:${t.bench} reported nothing)`,
      r ? (r.met ? 'met' : 'MISSED') : 'NOT MEASURED',
    ];
  });
  const head = ['target', 'goal', 'measured', 'against the reference of the same run', 'verdict'];
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(width[i]!))
      .join(' | ')
      .trimEnd();
  const met = rows.filter((r) => r[4] === 'met').length;
  return {
    text: [fmt(head), width.map((w) => '-'.repeat(w)).join('-|-'), ...rows.map(fmt)].join('\n'),
    met,
    total: TARGETS.length,
  };
}
