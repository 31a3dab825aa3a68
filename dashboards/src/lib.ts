/**
 * Shared pieces of every CodeLab dashboard: the datasources (fixed uids, the same ones
 * `deploy/grafana/provisioning/datasources/datasources.yaml` provisions; never `${DS_…}`), units,
 * template variables, panel builders with a title, a description and a unit each, PromQL helpers
 * that always use `$__rate_interval`, and `allPanelQueries()`, which reads the generated JSON so the
 * live test can evaluate every panel query against a real Prometheus.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type * as cog from '@grafana/grafana-foundation-sdk/cog';
import {
  DashboardBuilder,
  DashboardCursorSync,
  DashboardLinkBuilder,
  DashboardLinkType,
  QueryVariableBuilder,
  ThresholdsConfigBuilder,
  MappingType,
  ThresholdsMode,
  VariableRefresh,
  VariableSort,
  type Dashboard,
  type Threshold,
  type ValueMapping,
} from '@grafana/grafana-foundation-sdk/dashboard';
import { DataqueryBuilder } from '@grafana/grafana-foundation-sdk/prometheus';
import { PanelBuilder as TimeseriesPanelBuilder } from '@grafana/grafana-foundation-sdk/timeseries';
import { PanelBuilder as StatPanelBuilder } from '@grafana/grafana-foundation-sdk/stat';
import {
  LegendDisplayMode,
  LegendPlacement,
  ReduceDataOptionsBuilder,
  SortOrder,
  TooltipDisplayMode,
  VizLegendOptionsBuilder,
  VizTooltipOptionsBuilder,
} from '@grafana/grafana-foundation-sdk/common';

// ---- datasources -------------------------------------------------------------------------------

/** Fixed datasource uids: provisioned under these uids, referenced by them (file provisioning never resolves `${DS_…}`). */
export const DATASOURCE_UIDS = { prometheus: 'codelab-prometheus', loki: 'codelab-loki', tempo: 'codelab-tempo' } as const;
const PROMETHEUS = { type: 'prometheus', uid: DATASOURCE_UIDS.prometheus };

/** Grafana's rate window: at least 4 scrape intervals (the datasource's `timeInterval`). */
const RATE_INTERVAL = '$__rate_interval';

// ---- units (Grafana unit ids) -------------------------------------------------------------------

export const UNITS = {
  seconds: 's',
  bytes: 'bytes',
  percentUnit: 'percentunit',
  reqps: 'reqps',
  perSecond: 'ops',
  count: 'short',
  none: 'none',
  tokensPerSecond: 'tokens/s',
} as const;

// ---- PromQL helpers ------------------------------------------------------------------------------

/** `rate(<metric>{<selector>}[$__rate_interval])`. */
function rate(metric: string, selector = ''): string {
  return `rate(${metric}${selector ? `{${selector}}` : ''}[${RATE_INTERVAL}])`;
}

/** `sum by (<by>) (rate(...))`. */
export function sumRate(metric: string, by: readonly string[], selector = ''): string {
  return `sum by (${by.join(', ')}) (${rate(metric, selector)})`;
}

/** The q-quantile of a classic histogram, aggregated by `by` (plus `le`). */
export function quantile(q: number, histogram: string, by: readonly string[], selector = ''): string {
  return `histogram_quantile(${q}, ${sumRate(`${histogram}_bucket`, ['le', ...by], selector)})`;
}

/** The selector for a multi-value template variable (`All` is `.+`). */
export function matchVar(label: string, variable = label): string {
  return `${label}=~"$${variable}"`;
}

// ---- template variables --------------------------------------------------------------------------

/** A multi-value variable over the values of `label` on `metric`, `All` by default. */
export function labelVariable(name: string, metric: string, label: string, description: string): QueryVariableBuilder {
  const query = `label_values(${metric}, ${label})`;
  return new QueryVariableBuilder(name)
    .label(name)
    .description(description)
    .datasource(PROMETHEUS)
    .query({ query, refId: 'PrometheusVariableQueryEditor-VariableQuery', qryType: 1 })
    .definition(query)
    .refresh(VariableRefresh.OnTimeRangeChanged)
    .sort(VariableSort.AlphabeticalAsc)
    .multi(true)
    .includeAll(true)
    .allValue('.+')
    .current({ selected: true, text: ['All'], value: ['$__all'] });
}

/** `service`: the label every RED and pool series carries (gateway, runtime, llm-proxy, auth). */
export function serviceVariable(metric = 'http_server_request_duration_seconds_count'): QueryVariableBuilder {
  return labelVariable('service', metric, 'service', 'CodeLab service (the `service` label of the RED histogram)');
}

/** `job`: the Prometheus scrape job, for series without a `service` label (prom-client defaults). */
export function jobVariable(metric = 'nodejs_version_info'): QueryVariableBuilder {
  return labelVariable('job', metric, 'job', 'Prometheus scrape job (one per service)');
}

// ---- panels --------------------------------------------------------------------------------------

interface Query {
  expr: string;
  legend: string;
  /** Show exemplars (latency panels): Grafana links their trace_id to Tempo through the datasource. */
  exemplar?: boolean;
  instant?: boolean;
}

export interface PanelSpec {
  title: string;
  description: string;
  unit: string;
  queries: Query[];
  /** Grid width (of 24) and height. */
  w?: number;
  h?: number;
  min?: number;
  max?: number;
  thresholds?: Threshold[];
  /** Value → text and colour (state gauges). */
  mappings?: Record<string, { text: string; color: string }>;
}

function valueMappings(m: Record<string, { text: string; color: string }>): ValueMapping[] {
  const options = Object.fromEntries(Object.entries(m).map(([value, r], index) => [value, { ...r, index }]));
  return [{ type: MappingType.ValueToText, options }];
}

const REF_IDS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';

function targets(queries: Query[]): DataqueryBuilder[] {
  return queries.map((q, i) => {
    const t = new DataqueryBuilder()
      .datasource(PROMETHEUS)
      .refId(REF_IDS[i] ?? `Q${i}`)
      .expr(q.expr)
      .legendFormat(q.legend);
    if (q.exemplar) t.exemplar(true);
    if (q.instant) t.instant();
    else t.range();
    return t;
  });
}

function thresholds(steps: Threshold[] | undefined): ThresholdsConfigBuilder {
  return new ThresholdsConfigBuilder().mode(ThresholdsMode.Absolute).steps(steps ?? [{ value: null as unknown as number, color: 'green' }]);
}

/** A time series panel. */
export function timeseries(spec: PanelSpec): TimeseriesPanelBuilder {
  const p = new TimeseriesPanelBuilder()
    .title(spec.title)
    .description(spec.description)
    .unit(spec.unit)
    .datasource(PROMETHEUS)
    .span(spec.w ?? 12)
    .height(spec.h ?? 8)
    .lineWidth(1)
    .fillOpacity(10)
    .thresholds(thresholds(spec.thresholds))
    .legend(new VizLegendOptionsBuilder().showLegend(true).displayMode(LegendDisplayMode.List).placement(LegendPlacement.Bottom))
    .tooltip(new VizTooltipOptionsBuilder().mode(TooltipDisplayMode.Multi).sort(SortOrder.Descending))
    .targets(targets(spec.queries));
  if (spec.min !== undefined) p.min(spec.min);
  if (spec.max !== undefined) p.max(spec.max);
  if (spec.mappings) p.mappings(valueMappings(spec.mappings));
  return p;
}

/** A latency time series: exemplars on every query (they open the trace in Tempo). */
export function latency(spec: Omit<PanelSpec, 'unit'> & { unit?: string }): TimeseriesPanelBuilder {
  return timeseries({ ...spec, unit: spec.unit ?? UNITS.seconds, queries: spec.queries.map((q) => ({ ...q, exemplar: true })) });
}

/** A single-value panel (last value). */
export function stat(spec: PanelSpec): StatPanelBuilder {
  const p = new StatPanelBuilder()
    .title(spec.title)
    .description(spec.description)
    .unit(spec.unit)
    .datasource(PROMETHEUS)
    .span(spec.w ?? 6)
    .height(spec.h ?? 4)
    .thresholds(thresholds(spec.thresholds))
    .reduceOptions(new ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false))
    .targets(targets(spec.queries));
  if (spec.min !== undefined) p.min(spec.min);
  if (spec.max !== undefined) p.max(spec.max);
  if (spec.mappings) p.mappings(valueMappings(spec.mappings));
  return p;
}

// ---- dashboards ----------------------------------------------------------------------------------

const DASHBOARD_TAG = 'codelab';

/** A dashboard with the settings every CodeLab dashboard shares. */
export function codelabDashboard(uid: string, title: string, description: string, tags: string[] = []): DashboardBuilder {
  return new DashboardBuilder(title)
    .uid(uid)
    .description(description)
    .tags([DASHBOARD_TAG, ...tags])
    .timezone('utc')
    .refresh('30s')
    .time({ from: 'now-1h', to: 'now' })
    .tooltip(DashboardCursorSync.Crosshair)
    .readonly()
    .link(
      new DashboardLinkBuilder('CodeLab dashboards')
        .type(DashboardLinkType.Dashboards)
        .tags([DASHBOARD_TAG])
        .asDropdown(true)
        .includeVars(false)
        .keepTime(true)
        .icon('external link')
        .tooltip('')
        .targetBlank(false),
    );
}

/** Builds the dashboard and numbers its panels (stable ids, in layout order). */
export function finish(builder: cog.Builder<Dashboard>): Dashboard {
  const d = builder.build();
  let id = 1;
  for (const panel of d.panels ?? []) {
    (panel as { id?: number }).id = id++;
    for (const inner of (panel as { panels?: { id?: number }[] }).panels ?? []) inner.id = id++;
  }
  return d;
}

// ---- queries of the generated dashboards ---------------------------------------------------------

export const GENERATED_DIR = fileURLToPath(new URL('../generated/', import.meta.url));

export interface PanelQuery {
  dashboard: string;
  panel: string;
  refId: string;
  /** PromQL as Grafana sends it, with `$__rate_interval` and the template variables substituted. */
  expr: string;
  /** The query as written in the dashboard. */
  raw: string;
}

interface JsonPanel {
  title?: string;
  type?: string;
  targets?: { expr?: string; refId?: string }[];
  panels?: JsonPanel[];
}

/**
 * Every Prometheus query of every panel of the generated dashboards (`dashboards/generated/*.json`),
 * made evaluable: `$__rate_interval` becomes `rateInterval` and the multi-value variables their
 * `All` value (`.+`).
 */
export function allPanelQueries(options: { dir?: string; rateInterval?: string } = {}): PanelQuery[] {
  const dir = options.dir ?? GENERATED_DIR;
  const rateInterval = options.rateInterval ?? '1m';
  const out: PanelQuery[] = [];
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()) {
    const d = JSON.parse(readFileSync(join(dir, file), 'utf8')) as {
      uid: string;
      panels?: JsonPanel[];
      templating?: { list?: { name: string; allValue?: string }[] };
    };
    const vars = (d.templating?.list ?? []).map((v) => ({ name: v.name, value: v.allValue ?? '.+' }));
    const walk = (panels: JsonPanel[]): void => {
      for (const p of panels) {
        for (const t of p.targets ?? []) {
          if (!t.expr) continue;
          let expr = t.expr.replaceAll('$__rate_interval', rateInterval);
          for (const v of vars) expr = expr.replaceAll(`$${v.name}`, v.value);
          out.push({ dashboard: d.uid, panel: p.title ?? '', refId: t.refId ?? '', expr, raw: t.expr });
        }
        walk(p.panels ?? []);
      }
    };
    walk(d.panels ?? []);
  }
  return out;
}

const PROMQL_WORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'inf',
  'nan',
]);

/**
 * The metric names (and recording rule names) a PromQL expression reads: identifiers that are not
 * functions, keywords, label names (in braces or grouping clauses), strings or durations.
 */
export function metricNamesOf(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const word = m[0];
    const next = stripped.slice((m.index ?? 0) + word.length).trimStart();
    if (next.startsWith('(') || PROMQL_WORDS.has(word.toLowerCase())) continue;
    names.add(word);
  }
  return [...names].sort();
}
