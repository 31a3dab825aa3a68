/**
 * What a run amounts to: `summary.json` (every metric's aggregates, the thresholds with their
 * outcome, the executor's counts), `timeline.json` (the charts' per-bucket series) and the k6-like
 * table printed at the end.
 */
import type { ArrivalProfile } from '../../lib/profiles.ts';
import type { ExecutorResult, Schedule } from '../arrival.ts';
import type { MetricSummary, Registry, Timeline } from '../metrics.ts';
import { describeThreshold, evaluateAll, type Threshold, type ThresholdResult } from '../thresholds.ts';
import type { Targets } from '../scenarios/types.ts';

/** Exit codes, as k6 has them where it has one. */
export const EXIT = { passed: 0, setupFailed: 1, usage: 2, thresholdsFailed: 99, interrupted: 105 } as const;

export interface Summary {
  tool: 'codelab-load-driver';
  version: 1;
  scenario: string;
  profile: string;
  description: string;
  /** passed: every threshold passed; failed: one failed (or aborted the run), or the run was interrupted. */
  verdict: 'passed' | 'failed';
  exitCode: number;
  /** Why the run ended early, if it did. */
  aborted: { by: 'threshold'; threshold: string; atSeconds: number } | { by: 'signal'; atSeconds: number } | null;
  startedAt: string;
  endedAt: string;
  /** Seconds from the first iteration to the end (graceful stop included). */
  durationSeconds: number;
  /** Seconds the profile's stages take (after --duration-scale). */
  plannedSeconds: number;
  durationScale: number;
  gracefulStopSeconds: number;
  targets: Partial<Targets>;
  executor: ArrivalProfile &
    Pick<ExecutorResult, 'started' | 'dropped' | 'completed' | 'failed' | 'interrupted' | 'maxAllocatedVUs'> & {
      expectedIterations: number;
    };
  /** Which metrics the progress line and the charts follow. */
  keyMetrics: { latency: string; errors: string; ttft?: string };
  thresholds: ThresholdResult[];
  /** `metric: expression` of every failed threshold. */
  failedThresholds: string[];
  /** Every metric and tracked sub-metric (`http_req_duration{name:…}`, `checks{check:…}`), by key. */
  metrics: Record<string, MetricSummary>;
  checks: { name: string; passes: number; fails: number }[];
}

/** The charts' data, one value per time bucket. */
export interface TimelineData {
  bucketSeconds: number;
  /** Bucket starts, seconds since the run started. */
  t: number[];
  /** Average target rate over the bucket (iterations/s). */
  target: number[];
  /** Iterations/s started, dropped, completed. */
  started: number[];
  dropped: number[];
  completed: number[];
  /** Busy VUs at the end of the bucket (null: unchanged). */
  vus: (number | null)[];
  latency: PercentileSeries;
  ttft?: PercentileSeries;
  /** Failures of the scenario's error metric, and its samples, per second. */
  errors: { metric: string; failed: number[]; total: number[] };
  /** Failed checks per second. */
  failedChecks: number[];
}

interface PercentileSeries {
  metric: string;
  p50: (number | null)[];
  p95: (number | null)[];
  p99: (number | null)[];
  /** Threshold limits on this metric, for the chart's dashed lines. */
  limits: { label: string; value: number }[];
}

const perSecond = (n: number | undefined, bucket: number): number => Math.round(((n ?? 0) / bucket) * 1000) / 1000;

/** Upper limits a chart can draw (`p(95)<2500` → 2500). */
function limitsOf(metric: string, thresholds: ThresholdResult[]): { label: string; value: number }[] {
  const out: { label: string; value: number }[] = [];
  for (const t of thresholds) {
    if (t.metric !== metric) continue;
    const m = /^(p\([\d.]+\)|avg|med|max|min)\s*<=?\s*([\d.eE+-]+)$/.exec(t.expression);
    if (m) out.push({ label: t.expression, value: Number(m[2]) });
  }
  return out;
}

function buildTimeline(
  registry: Registry,
  schedule: Schedule,
  untilSeconds: number,
  keys: Summary['keyMetrics'],
  thresholds: ThresholdResult[],
): TimelineData {
  const tl: Timeline = registry.timeline(untilSeconds);
  const b = tl.bucketSeconds;
  const col = (name: string) => tl.metrics[name] ?? tl.t.map(() => null);
  const pct = (metric: string): PercentileSeries => ({
    metric,
    p50: col(metric).map((v) => v?.p50 ?? null),
    p95: col(metric).map((v) => v?.p95 ?? null),
    p99: col(metric).map((v) => v?.p99 ?? null),
    limits: limitsOf(metric, thresholds),
  });
  const errors = col(keys.errors);
  return {
    bucketSeconds: b,
    t: tl.t,
    target: tl.t.map(
      (t) =>
        Math.round(
          ((schedule.areaUntil(Math.min(t + b, schedule.duration)) - schedule.areaUntil(Math.min(t, schedule.duration))) / b) * 1000,
        ) / 1000,
    ),
    started: col('iterations_started').map((v) => perSecond(v?.value, b)),
    dropped: col('dropped_iterations').map((v) => perSecond(v?.value, b)),
    completed: col('iterations').map((v) => perSecond(v?.value, b)),
    vus: col('vus').map((v) => v?.value ?? null),
    latency: pct(keys.latency),
    ...(keys.ttft ? { ttft: pct(keys.ttft) } : {}),
    errors: { metric: keys.errors, failed: errors.map((v) => perSecond(v?.passes, b)), total: errors.map((v) => perSecond(v?.count, b)) },
    failedChecks: col('checks').map((v) => perSecond(v ? v.count - (v.passes ?? 0) : 0, b)),
  };
}

function checksOf(metrics: Record<string, MetricSummary>): Summary['checks'] {
  return Object.entries(metrics)
    .filter(([k]) => k.startsWith('checks{check:'))
    .map(([k, m]) => ({ name: k.slice('checks{check:'.length, -1), passes: m.passes ?? 0, fails: m.fails ?? 0 }));
}

export interface RunFacts {
  scenario: string;
  profile: string;
  description: string;
  arrival: ArrivalProfile;
  schedule: Schedule;
  result: ExecutorResult;
  registry: Registry;
  thresholds: Threshold[];
  aborted: Summary['aborted'];
  startedAt: Date;
  endedAt: Date;
  durationScale: number;
  gracefulStop: number;
  targets: Partial<Targets>;
  keyMetrics: Summary['keyMetrics'];
}

/** Evaluates the thresholds at the end of a run and puts together summary.json and timeline.json. */
export function buildSummary(f: RunFacts): { summary: Summary; timeline: TimelineData } {
  const elapsed = f.result.elapsedSeconds;
  const results = evaluateAll(f.thresholds, f.registry, elapsed);
  const aborted = f.aborted;
  if (aborted?.by === 'threshold') {
    // the threshold that stopped the run has failed, whatever the samples after it say
    for (const r of results) if (describeThreshold(r) === aborted.threshold) r.passed = false;
  }
  const failed = results.filter((r) => !r.passed);
  const exitCode = aborted?.by === 'signal' ? EXIT.interrupted : failed.length ? EXIT.thresholdsFailed : EXIT.passed;
  const metrics = f.registry.summaries(elapsed);
  const summary: Summary = {
    tool: 'codelab-load-driver',
    version: 1,
    scenario: f.scenario,
    profile: f.profile,
    description: f.description,
    verdict: exitCode === EXIT.passed ? 'passed' : 'failed',
    exitCode,
    aborted,
    startedAt: f.startedAt.toISOString(),
    endedAt: f.endedAt.toISOString(),
    durationSeconds: Math.round(elapsed * 1000) / 1000,
    plannedSeconds: f.schedule.duration,
    durationScale: f.durationScale,
    gracefulStopSeconds: f.gracefulStop,
    targets: f.targets,
    executor: {
      ...f.arrival,
      expectedIterations: f.schedule.total,
      started: f.result.started,
      dropped: f.result.dropped,
      completed: f.result.completed,
      failed: f.result.failed,
      interrupted: f.result.interrupted,
      maxAllocatedVUs: f.result.maxAllocatedVUs,
    },
    keyMetrics: f.keyMetrics,
    thresholds: results,
    failedThresholds: failed.map(describeThreshold),
    metrics,
    checks: checksOf(metrics),
  };
  return { summary, timeline: buildTimeline(f.registry, f.schedule, elapsed, f.keyMetrics, results) };
}

/** A metric worth a row: it has samples, or a threshold. */
export function shown(key: string, m: MetricSummary, thresholds: ThresholdResult[]): boolean {
  return m.count > 0 || thresholds.some((t) => t.metric === key);
}

// ---- the table printed at the end ----

const num = (n: number | null | undefined, unit?: string): string => {
  if (n === null || n === undefined) return '-';
  if (unit === 'ms') return n >= 10_000 ? `${(n / 1000).toFixed(2)}s` : n >= 100 ? `${n.toFixed(0)}ms` : `${n.toFixed(2)}ms`;
  if (Number.isInteger(n)) return String(n);
  return n >= 100 ? n.toFixed(0) : n.toFixed(2);
};

export function formatActual(r: ThresholdResult, metrics: Record<string, MetricSummary>): string {
  const unit = metrics[r.metric]?.unit;
  if (/^rate/.test(r.expression) && metrics[r.metric]?.type === 'rate') return `${(r.actual * 100).toFixed(2)}%`;
  return num(r.actual, /^(p\(|avg|med|min|max)/.test(r.expression) ? unit : undefined);
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

export function formatSummary(s: Summary, reportPath?: string): string {
  const lines: string[] = [];
  const ex = s.executor;
  lines.push('');
  lines.push(
    `  scenario ${s.scenario} · profile ${s.profile}${s.durationScale !== 1 ? ` (durations ×${s.durationScale})` : ''} · ${s.durationSeconds.toFixed(1)}s of ${s.plannedSeconds.toFixed(1)}s planned`,
  );
  lines.push(
    `  iterations: ${ex.started} started of ${ex.expectedIterations} scheduled, ${ex.dropped} dropped, ${ex.completed} completed, ${ex.failed} threw, ${ex.interrupted} interrupted; ${ex.maxAllocatedVUs} VUs allocated (max ${ex.maxVUs})`,
  );
  if (s.aborted)
    lines.push(
      `  ABORTED after ${s.aborted.atSeconds.toFixed(1)}s: ${s.aborted.by === 'threshold' ? `threshold ${s.aborted.threshold} failed (abortOnFail)` : 'interrupted'}`,
    );
  lines.push('');
  lines.push('  THRESHOLDS');
  const tw = Math.max(...s.thresholds.map((t) => t.metric.length), 10);
  const ew = Math.max(...s.thresholds.map((t) => t.expression.length), 10);
  for (const t of s.thresholds) {
    lines.push(
      `    ${t.passed ? '✓' : '✗'} ${pad(t.metric, tw)}  ${pad(t.expression, ew)}  actual ${formatActual(t, s.metrics)}${t.samples === 0 && ['trend', 'rate'].includes(s.metrics[t.metric]?.type ?? '') ? ' (no samples)' : ''}${t.abortOnFail ? `  [abortOnFail after ${t.delayAbortEval}]` : ''}`,
    );
  }
  lines.push('');
  lines.push('  METRICS');
  const failedMetric = new Map<string, boolean>();
  for (const t of s.thresholds) failedMetric.set(t.metric, (failedMetric.get(t.metric) ?? true) && t.passed);
  const rows: string[][] = [['', 'metric', 'count', 'rate/s', 'p50', 'p95', 'p99', 'min', 'max', 'avg']];
  for (const [key, m] of Object.entries(s.metrics)) {
    if (key.startsWith('checks{') || !shown(key, m, s.thresholds)) continue;
    const mark = failedMetric.has(key) ? (failedMetric.get(key) ? '✓' : '✗') : ' ';
    const name = key.includes('{') ? `  ${key.slice(key.indexOf('{'))}` : key;
    if (m.type === 'trend')
      rows.push([
        mark,
        name,
        String(m.count),
        num(m.rate),
        num(m.p50, m.unit),
        num(m.p95, m.unit),
        num(m.p99, m.unit),
        num(m.min, m.unit),
        num(m.max, m.unit),
        num(m.avg, m.unit),
      ]);
    // rates and gauges: one text after rate/s, outside the percentile columns
    else if (m.type === 'rate')
      rows.push([mark, name, String(m.count), num(m.rate), `${((m.value ?? 0) * 100).toFixed(2)}% (${m.passes} of ${m.count})`]);
    else if (m.type === 'counter') rows.push([mark, name, num(m.count), num(m.rate)]);
    else rows.push([mark, name, String(m.count), '', `value ${num(m.value)}, min ${num(m.min)}, max ${num(m.max)}`]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.filter((r) => r.length === 10 || i < 4).map((r) => (r[i] ?? '').length)));
  for (const r of rows)
    lines.push(
      `    ${r
        .map((c, i) => (i === r.length - 1 ? c : pad(c, widths[i]!)))
        .join('  ')
        .trimEnd()}`,
    );
  if (s.checks.length) {
    lines.push('');
    lines.push('  CHECKS');
    for (const c of s.checks)
      lines.push(`    ${c.fails === 0 ? '✓' : '✗'} ${c.name}  ${c.passes} passed${c.fails ? `, ${c.fails} failed` : ''}`);
  }
  lines.push('');
  if (s.aborted?.by === 'signal')
    lines.push(
      `  INTERRUPTED after ${s.aborted.atSeconds.toFixed(1)}s (exit ${s.exitCode})${s.failedThresholds.length ? `; failing when stopped: ${s.failedThresholds.join('; ')}` : ''}`,
    );
  else if (s.verdict === 'passed') lines.push(`  PASSED: all ${s.thresholds.length} thresholds passed`);
  else if (s.failedThresholds.length)
    lines.push(`  FAILED: ${s.failedThresholds.length} threshold(s) failed: ${s.failedThresholds.join('; ')}`);
  else lines.push('  FAILED: the run was interrupted');
  if (reportPath) lines.push(`  report: ${reportPath}`);
  lines.push('');
  return lines.join('\n');
}
