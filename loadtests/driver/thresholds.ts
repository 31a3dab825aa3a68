/**
 * k6 thresholds, parsed and evaluated against the driver's metrics: the same expressions as
 * `loadtests/generated/thresholds.json` gives the k6 scripts. An expression is
 * `<aggregation> <operator> <number>`: `avg`, `min`, `max`, `med`, `p(N)` (Trend), `rate` (Rate,
 * Counter per second), `count` (Counter), `value` (Gauge); operators `<`, `<=`, `>`, `>=`, `==`,
 * `===`, `!=`. The object form adds `abortOnFail` (stop the run as soon as it fails) and
 * `delayAbortEval` (not before this much of the run has passed). A threshold fails the run: exit 99.
 */
import { seconds } from '../lib/profiles.ts';
import { parseMetricKey, type MetricType, type Registry } from './metrics.ts';

export type ThresholdSpec = string | { threshold: string; abortOnFail?: boolean; delayAbortEval?: string };

type Aggregation = 'avg' | 'min' | 'max' | 'med' | 'p' | 'rate' | 'count' | 'value';
export type Operator = '<' | '<=' | '>' | '>=' | '==' | '!=';

export interface Expression {
  source: string;
  aggregation: Aggregation;
  /** p(N): N. */
  percentile?: number;
  operator: Operator;
  value: number;
}

export interface Threshold extends Expression {
  /** The metric (or sub-metric) key: `http_req_duration`, `http_req_duration{name:login}`. */
  metric: string;
  abortOnFail: boolean;
  /** Seconds of the run before an abortOnFail threshold is evaluated. */
  delayAbortEval: number;
}

export interface ThresholdResult {
  metric: string;
  expression: string;
  passed: boolean;
  /** The aggregate the expression compared (ms for times). */
  actual: number;
  /** Samples behind it (a threshold over no sample passes or fails on 0, as in k6). */
  samples: number;
  abortOnFail: boolean;
  delayAbortEval?: string;
}

const AGGREGATIONS: Record<MetricType, Aggregation[]> = {
  trend: ['avg', 'min', 'max', 'med', 'p'],
  rate: ['rate'],
  counter: ['count', 'rate'],
  gauge: ['value'],
};

const EXPR =
  /^\s*(avg|min|max|med|count|rate|value|p\(\s*(\d+(?:\.\d+)?)\s*\))\s*(<=|>=|===|==|!=|<|>)\s*(-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*$/;

/** Parses `p(95)<500`, `rate<0.01`, `count==0`, … */
export function parseExpression(source: string): Expression {
  const m = EXPR.exec(source);
  if (!m) throw new Error(`not a threshold expression: "${source}" (expected e.g. p(95)<500, avg<200, rate<0.01, count==0)`);
  const agg = m[1]!.startsWith('p(') ? 'p' : (m[1] as Aggregation);
  const percentile = agg === 'p' ? Number(m[2]) : undefined;
  if (percentile !== undefined && (percentile < 0 || percentile > 100)) throw new Error(`percentile out of range in "${source}"`);
  const op = (m[3] === '===' ? '==' : m[3]) as Operator;
  return {
    source: source.trim(),
    aggregation: agg,
    ...(percentile !== undefined ? { percentile } : {}),
    operator: op,
    value: Number(m[4]),
  };
}

export function compare(actual: number, op: Operator, expected: number): boolean {
  switch (op) {
    case '<':
      return actual < expected;
    case '<=':
      return actual <= expected;
    case '>':
      return actual > expected;
    case '>=':
      return actual >= expected;
    case '==':
      return actual === expected;
    case '!=':
      return actual !== expected;
  }
}

/** Reads one scenario's entry of thresholds.json: `{ metric: [expr | {threshold, abortOnFail, delayAbortEval}] }`. */
export function parseThresholds(spec: Record<string, ThresholdSpec[]>): Threshold[] {
  const out: Threshold[] = [];
  for (const [metric, list] of Object.entries(spec)) {
    parseMetricKey(metric); // validates the key
    if (!Array.isArray(list)) throw new Error(`thresholds of ${metric} must be a list`);
    for (const item of list) {
      const obj = typeof item === 'string' ? { threshold: item } : item;
      if (typeof obj?.threshold !== 'string')
        throw new Error(`threshold of ${metric} has no "threshold" expression: ${JSON.stringify(item)}`);
      const expr = parseExpression(obj.threshold);
      out.push({
        ...expr,
        metric,
        abortOnFail: obj.abortOnFail === true,
        delayAbortEval: obj.delayAbortEval ? seconds(obj.delayAbortEval) : 0,
      });
    }
  }
  return out;
}

/** Checks every threshold against the registry's metrics (unknown metric, wrong aggregation) and tracks its sub-metrics. */
export function bindThresholds(thresholds: Threshold[], registry: Registry): void {
  for (const t of thresholds) {
    const { metric } = parseMetricKey(t.metric);
    const def = registry.defs.get(metric);
    if (!def) throw new Error(`threshold "${t.metric}: ${t.source}": the scenario has no metric ${metric}`);
    if (!AGGREGATIONS[def.type].includes(t.aggregation)) {
      throw new Error(
        `threshold "${t.metric}: ${t.source}": ${metric} is a ${def.type}, which has ${AGGREGATIONS[def.type].map((a) => (a === 'p' ? 'p(N)' : a)).join(', ')}`,
      );
    }
    registry.submetric(t.metric);
  }
}

export function evaluate(t: Threshold, registry: Registry, elapsedSeconds?: number): ThresholdResult {
  const { value, samples } = registry.aggregate(t.metric, t.aggregation, t.percentile, elapsedSeconds);
  return {
    metric: t.metric,
    expression: t.source,
    passed: compare(value, t.operator, t.value),
    actual: Math.round(value * 1e6) / 1e6,
    samples,
    abortOnFail: t.abortOnFail,
    ...(t.abortOnFail ? { delayAbortEval: `${t.delayAbortEval}s` } : {}),
  };
}

export function evaluateAll(thresholds: Threshold[], registry: Registry, elapsedSeconds?: number): ThresholdResult[] {
  return thresholds.map((t) => evaluate(t, registry, elapsedSeconds));
}

/** The first abortOnFail threshold failing at `elapsed` seconds (past its delayAbortEval), if any. */
export function abortingThreshold(thresholds: Threshold[], registry: Registry, elapsed: number): ThresholdResult | undefined {
  for (const t of thresholds) {
    if (!t.abortOnFail || elapsed < t.delayAbortEval) continue;
    const r = evaluate(t, registry, elapsed);
    if (!r.passed) return r;
  }
  return undefined;
}

export const describeThreshold = (r: Pick<ThresholdResult, 'metric' | 'expression'>): string => `${r.metric}: ${r.expression}`;
