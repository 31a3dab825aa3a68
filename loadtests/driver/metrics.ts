/**
 * The driver's metrics, named and typed like k6's: Counter, Gauge, Rate and Trend. A Trend keeps its
 * whole distribution in an HDR histogram (3 significant digits, microsecond resolution for
 * milliseconds) plus the exact count, sum, min and max; a Rate counts its non-zero samples (k6:
 * `http_req_failed` true = failed, `checks` true = passed). Every sample also lands in a time bucket
 * of the run (1 s, or 5 s for long runs), which the report charts: bucket percentiles are exact
 * (the bucket's raw samples are kept until the bucket is closed, then summarized and dropped).
 *
 * Sub-metrics: `metric{tag:value,…}` (what a tag-scoped k6 threshold names) aggregates only the
 * samples carrying those tags; `breakdown(metric, tag)` makes one per value of the tag (the
 * report's per-request table).
 */
import { build, type Histogram } from 'hdr-histogram-js';

export type MetricType = 'counter' | 'gauge' | 'rate' | 'trend';
export type Tags = Readonly<Record<string, string>>;

export interface MetricDef {
  name: string;
  type: MetricType;
  /** `ms` for times (k6's `isTime` trends); anything else is a plain number. */
  unit?: string;
  description?: string;
}

/** What one metric (or sub-metric) amounts to, as summary.json writes it. */
export interface MetricSummary {
  type: MetricType;
  unit?: string;
  description?: string;
  /** Trend, Rate: samples; Counter: the sum of the values (k6 `count`); Gauge: samples. */
  count: number;
  /** `count` per second of the run. */
  rate: number;
  /** Rate: share of non-zero samples (what a threshold's `rate` is); Gauge: last value; Counter: the sum. */
  value?: number;
  /** Rate: non-zero samples / zero samples. */
  passes?: number;
  fails?: number;
  /** Trend (null without samples), Gauge. */
  min?: number | null;
  max?: number | null;
  avg?: number | null;
  med?: number | null;
  p50?: number | null;
  p90?: number | null;
  p95?: number | null;
  p99?: number | null;
}

/** Trend values are recorded in thousandths (µs for ms) so the HDR histogram's integers keep sub-unit detail. */
const SCALE = 1000;

class TrendAgg {
  private hist: Histogram | undefined;
  count = 0;
  sum = 0;
  min = Infinity;
  max = -Infinity;
  add(v: number): void {
    if (!Number.isFinite(v)) return;
    const value = Math.max(0, v);
    (this.hist ??= build({ numberOfSignificantValueDigits: 3, autoResize: true, bitBucketSize: 'packed' })).recordValue(
      Math.round(value * SCALE),
    );
    this.count++;
    this.sum += value;
    if (value < this.min) this.min = value;
    if (value > this.max) this.max = value;
  }
  /** p in 0…100; 0 without samples (k6 evaluates an empty trend as 0). */
  percentile(p: number): number {
    if (!this.hist || this.count === 0) return 0;
    if (p >= 100) return this.max;
    if (p <= 0) return this.min;
    // the histogram answers the highest value equivalent to the bucket: never beyond the real max
    return Math.min(this.max, Math.max(this.min, this.hist.getValueAtPercentile(p) / SCALE));
  }
  get avg(): number {
    return this.count ? this.sum / this.count : 0;
  }
}

class RateAgg {
  passes = 0;
  total = 0;
  add(v: number): void {
    this.total++;
    if (v !== 0) this.passes++;
  }
  get value(): number {
    return this.total ? this.passes / this.total : 0;
  }
}

class CounterAgg {
  sum = 0;
  add(v: number): void {
    this.sum += v;
  }
}

class GaugeAgg {
  last = 0;
  min = Infinity;
  max = -Infinity;
  count = 0;
  add(v: number): void {
    this.last = v;
    this.count++;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }
}

type Agg = TrendAgg | RateAgg | CounterAgg | GaugeAgg;

function makeAgg(type: MetricType): Agg {
  switch (type) {
    case 'trend':
      return new TrendAgg();
    case 'rate':
      return new RateAgg();
    case 'counter':
      return new CounterAgg();
    case 'gauge':
      return new GaugeAgg();
  }
}

/** A parsed metric key: `http_req_duration{name:login,status:200}`. */
export interface MetricKey {
  metric: string;
  tags: Record<string, string>;
}

export function parseMetricKey(key: string): MetricKey {
  const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:\{(.*)\})?$/.exec(key.trim());
  if (!m) throw new Error(`not a metric name: ${key}`);
  const tags: Record<string, string> = {};
  if (m[2] !== undefined) {
    for (const part of m[2].split(',')) {
      const i = part.indexOf(':');
      if (i <= 0) throw new Error(`bad tag selector "${part}" in ${key} (expected tag:value)`);
      tags[part.slice(0, i).trim()] = part.slice(i + 1).trim();
    }
  }
  return { metric: m[1]!, tags };
}

function metricKey(metric: string, tags: Record<string, string>): string {
  const entries = Object.entries(tags);
  return entries.length ? `${metric}{${entries.map(([k, v]) => `${k}:${v}`).join(',')}}` : metric;
}

/** One time bucket of one metric, as the report charts it. */
export interface BucketValue {
  /** trend: samples; rate: samples; counter: sum; gauge: samples. */
  count: number;
  /** trend */
  p50?: number;
  p95?: number;
  p99?: number;
  max?: number;
  avg?: number;
  /** rate: non-zero samples */
  passes?: number;
  /** gauge: last value / counter: sum */
  value?: number;
}

export interface Timeline {
  bucketSeconds: number;
  /** Start of each bucket, seconds since the run started. */
  t: number[];
  /** Per metric, one entry per bucket (null: no sample in that bucket). */
  metrics: Record<string, (BucketValue | null)[]>;
}

type RawBucket = Map<string, number[] | { passes: number; total: number } | { sum: number } | { last: number; count: number }>;

function exactPercentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  // k6's method: linear interpolation between the closest ranks
  const pos = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export interface RegistryOptions {
  /** Width of the report's time buckets. */
  bucketSeconds?: number;
  /** Milliseconds clock (performance.now by default); samples are placed by it. */
  now?: () => number;
}

export class Registry {
  readonly defs = new Map<string, MetricDef>();
  private readonly totals = new Map<string, Agg>();
  private readonly subs = new Map<string, { key: string; tags: Record<string, string>; agg: Agg }[]>();
  private readonly breakdowns = new Map<string, string>();
  private readonly buckets: (RawBucket | undefined)[] = [];
  private readonly closed: (Map<string, BucketValue> | undefined)[] = [];
  readonly bucketSeconds: number;
  readonly now: () => number;
  private t0: number;

  constructor(defs: MetricDef[], opts: RegistryOptions = {}) {
    this.bucketSeconds = opts.bucketSeconds ?? 1;
    this.now = opts.now ?? (() => performance.now());
    this.t0 = this.now();
    for (const d of defs) this.define(d);
  }

  /** Restarts the run clock (samples before it land in bucket 0). */
  start(at = this.now()): void {
    this.t0 = at;
  }

  get startedAt(): number {
    return this.t0;
  }

  /** Seconds since start. */
  elapsed(at = this.now()): number {
    return Math.max(0, (at - this.t0) / 1000);
  }

  define(def: MetricDef): void {
    const prev = this.defs.get(def.name);
    if (prev) {
      if (prev.type !== def.type) throw new Error(`metric ${def.name} is already a ${prev.type}, not a ${def.type}`);
      return;
    }
    this.defs.set(def.name, def);
    this.totals.set(def.name, makeAgg(def.type));
  }

  has(name: string): boolean {
    return this.defs.has(name);
  }

  /** Tracks `metric{tag:value,…}` (a threshold's sub-metric). Returns its canonical key. */
  submetric(key: string): string {
    const { metric, tags } = parseMetricKey(key);
    const def = this.defs.get(metric);
    if (!def) throw new Error(`no metric named ${metric}`);
    if (Object.keys(tags).length === 0) return metric;
    const canonical = metricKey(metric, tags);
    const list = this.subs.get(metric) ?? [];
    if (!list.some((s) => s.key === canonical)) list.push({ key: canonical, tags, agg: makeAgg(def.type) });
    this.subs.set(metric, list);
    return canonical;
  }

  /** One sub-metric per value of `tag` seen on `metric`'s samples. */
  breakdown(metric: string, tag: string): void {
    this.breakdowns.set(metric, tag);
  }

  add(name: string, value: number | boolean, tags?: Tags, at = this.now()): void {
    const def = this.defs.get(name);
    if (!def) throw new Error(`sample for an undefined metric: ${name}`);
    const v = typeof value === 'boolean' ? (value ? 1 : 0) : value;
    this.totals.get(name)!.add(v);
    if (tags) {
      const tag = this.breakdowns.get(name);
      if (tag && tags[tag] !== undefined) this.submetric(metricKey(name, { [tag]: tags[tag]! }));
      for (const s of this.subs.get(name) ?? []) {
        if (Object.entries(s.tags).every(([k, want]) => tags[k] === want)) s.agg.add(v);
      }
    }
    this.addToBucket(def, v, at);
  }

  private addToBucket(def: MetricDef, v: number, at: number): void {
    const i = Math.max(0, Math.floor((at - this.t0) / 1000 / this.bucketSeconds));
    if (this.closed[i]) return; // a very late sample for a bucket already summarized: counted in totals only
    const bucket = (this.buckets[i] ??= new Map());
    const cur = bucket.get(def.name);
    switch (def.type) {
      case 'trend':
        if (cur) (cur as number[]).push(v);
        else bucket.set(def.name, [v]);
        break;
      case 'rate': {
        const r = (cur as { passes: number; total: number } | undefined) ?? { passes: 0, total: 0 };
        r.total++;
        if (v !== 0) r.passes++;
        bucket.set(def.name, r);
        break;
      }
      case 'counter': {
        const c = (cur as { sum: number } | undefined) ?? { sum: 0 };
        c.sum += v;
        bucket.set(def.name, c);
        break;
      }
      case 'gauge': {
        const g = (cur as { last: number; count: number } | undefined) ?? { last: 0, count: 0 };
        g.last = v;
        g.count++;
        bucket.set(def.name, g);
        break;
      }
    }
    // buckets well behind the clock are final: summarize them and free their samples
    for (let j = i - 3; j >= 0 && this.buckets[j] && !this.closed[j]; j--) this.closeBucket(j);
  }

  private closeBucket(i: number): void {
    const raw = this.buckets[i];
    const out = new Map<string, BucketValue>();
    if (raw) {
      for (const [name, data] of raw) {
        if (Array.isArray(data)) {
          const sorted = data.sort((a, b) => a - b);
          out.set(name, {
            count: sorted.length,
            p50: exactPercentile(sorted, 50),
            p95: exactPercentile(sorted, 95),
            p99: exactPercentile(sorted, 99),
            max: sorted[sorted.length - 1]!,
            avg: sorted.reduce((a, b) => a + b, 0) / sorted.length,
          });
        } else if ('total' in data) out.set(name, { count: data.total, passes: data.passes });
        else if ('sum' in data) out.set(name, { count: data.sum, value: data.sum });
        else out.set(name, { count: data.count, value: data.last });
      }
    }
    this.closed[i] = out;
    this.buckets[i] = undefined;
  }

  /** The chart data: every bucket from 0 to `untilSeconds` (default: the last one with a sample). */
  timeline(untilSeconds?: number): Timeline {
    const filled = Math.max(this.buckets.length, this.closed.length);
    // the run's length, and any bucket a late sample opened after it
    const last = untilSeconds !== undefined ? Math.max(1, Math.ceil(untilSeconds / this.bucketSeconds - 1e-9), filled) : filled;
    for (let i = 0; i < filled; i++) if (!this.closed[i]) this.closeBucket(i);
    const t: number[] = [];
    const metrics: Record<string, (BucketValue | null)[]> = {};
    for (const name of this.defs.keys()) metrics[name] = [];
    for (let i = 0; i < last; i++) {
      t.push(i * this.bucketSeconds);
      const b = this.closed[i];
      for (const name of this.defs.keys()) metrics[name]!.push(b?.get(name) ?? null);
    }
    return { bucketSeconds: this.bucketSeconds, t, metrics };
  }

  /** The aggregate a threshold reads: `avg`, `min`, `max`, `med`, `p(N)`, `rate`, `count`, `value`. */
  aggregate(key: string, aggregation: string, percentile?: number, elapsedSeconds = this.elapsed()): { value: number; samples: number } {
    const { agg, type } = this.lookup(key);
    if (agg instanceof TrendAgg) {
      const samples = agg.count;
      switch (aggregation) {
        case 'avg':
          return { value: agg.avg, samples };
        case 'min':
          return { value: samples ? agg.min : 0, samples };
        case 'max':
          return { value: samples ? agg.max : 0, samples };
        case 'med':
          return { value: agg.percentile(50), samples };
        case 'p':
          return { value: agg.percentile(percentile ?? 50), samples };
      }
    } else if (agg instanceof RateAgg) {
      if (aggregation === 'rate') return { value: agg.value, samples: agg.total };
    } else if (agg instanceof CounterAgg) {
      if (aggregation === 'count') return { value: agg.sum, samples: agg.sum };
      if (aggregation === 'rate') return { value: elapsedSeconds > 0 ? agg.sum / elapsedSeconds : 0, samples: agg.sum };
    } else if (aggregation === 'value') return { value: agg.last, samples: agg.count };
    throw new Error(`${key} is a ${type}: it has no ${aggregation === 'p' ? 'p(N)' : aggregation}`);
  }

  private lookup(key: string): { agg: Agg; type: MetricType } {
    const { metric, tags } = parseMetricKey(key);
    const def = this.defs.get(metric);
    if (!def) throw new Error(`no metric named ${metric}`);
    if (Object.keys(tags).length === 0) return { agg: this.totals.get(metric)!, type: def.type };
    const canonical = metricKey(metric, tags);
    const sub = this.subs.get(metric)?.find((s) => s.key === canonical);
    if (!sub) throw new Error(`sub-metric ${canonical} is not tracked`);
    return { agg: sub.agg, type: def.type };
  }

  summary(key: string, elapsedSeconds = this.elapsed()): MetricSummary {
    const { metric } = parseMetricKey(key);
    const def = this.defs.get(metric)!;
    const { agg } = this.lookup(key);
    const secs = elapsedSeconds > 0 ? elapsedSeconds : 1;
    const head = { type: def.type, ...(def.unit ? { unit: def.unit } : {}), ...(def.description ? { description: def.description } : {}) };
    const r = (n: number): number => Math.round(n * 1000) / 1000;
    if (agg instanceof TrendAgg) {
      const has = agg.count > 0;
      const p = (n: number): number | null => (has ? r(agg.percentile(n)) : null);
      return {
        ...head,
        count: agg.count,
        rate: r(agg.count / secs),
        min: has ? r(agg.min) : null,
        max: has ? r(agg.max) : null,
        avg: has ? r(agg.avg) : null,
        med: p(50),
        p50: p(50),
        p90: p(90),
        p95: p(95),
        p99: p(99),
      };
    }
    if (agg instanceof RateAgg)
      return {
        ...head,
        count: agg.total,
        rate: r(agg.total / secs),
        value: r(agg.value * 1e6) / 1e6,
        passes: agg.passes,
        fails: agg.total - agg.passes,
      };
    if (agg instanceof CounterAgg) return { ...head, count: r(agg.sum), rate: r(agg.sum / secs), value: r(agg.sum) };
    return {
      ...head,
      count: agg.count,
      rate: r(agg.count / secs),
      value: agg.last,
      min: agg.count ? agg.min : null,
      max: agg.count ? agg.max : null,
    };
  }

  /** Every metric and tracked sub-metric, by key (metrics in definition order, each followed by its sub-metrics). */
  summaries(elapsedSeconds = this.elapsed()): Record<string, MetricSummary> {
    const out: Record<string, MetricSummary> = {};
    for (const name of this.defs.keys()) {
      out[name] = this.summary(name, elapsedSeconds);
      for (const s of this.subs.get(name) ?? []) out[s.key] = this.summary(s.key, elapsedSeconds);
    }
    return out;
  }
}
