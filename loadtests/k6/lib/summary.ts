/**
 * handleSummary(): the run's summary as JSON (`<SUMMARY_DIR>/<scenario>-<profile>.json`, default
 * directory loadtests/results, relative to where k6 runs), and a short text on stdout: each
 * threshold with its verdict, then the metrics the thresholds are on.
 */
import { profileName } from './options.ts';

interface SummaryMetric {
  type: 'counter' | 'gauge' | 'rate' | 'trend';
  contains?: 'default' | 'time' | 'data';
  values: Record<string, number>;
  thresholds?: Record<string, { ok: boolean }>;
}

export interface SummaryData {
  metrics: Record<string, SummaryMetric>;
  state?: { testRunDurationMs?: number };
}

function format(metric: SummaryMetric, stat: string, value: number): string {
  if (metric.type === 'rate' && stat === 'rate') return `${(value * 100).toFixed(2)}%`;
  if (metric.contains === 'time') return `${value.toFixed(1)}ms`;
  return Number.isInteger(value) ? String(value) : value.toFixed(2);
}

export function summaryText(scenario: string, profile: string, data: SummaryData): string {
  const lines = [`${scenario} (${profile})`];
  let failed = 0;
  for (const [name, metric] of Object.entries(data.metrics).sort(([a], [b]) => a.localeCompare(b))) {
    if (!metric.thresholds) continue;
    const stats = Object.entries(metric.values)
      .map(([stat, value]) => `${stat}=${format(metric, stat, value)}`)
      .join(' ');
    lines.push(`  ${name}: ${stats}`);
    for (const [expr, verdict] of Object.entries(metric.thresholds)) {
      if (!verdict.ok) failed += 1;
      lines.push(`    ${verdict.ok ? 'ok  ' : 'FAIL'} ${expr}`);
    }
  }
  lines.push(failed === 0 ? '  every threshold passed' : `  ${failed} threshold(s) failed`);
  return `${lines.join('\n')}\n`;
}

export function summaryFor(scenario: string): (data: SummaryData) => Record<string, string> {
  return (data) => {
    const profile = profileName();
    const dir = __ENV.SUMMARY_DIR || 'loadtests/results';
    return {
      [`${dir}/${scenario}-${profile}.json`]: JSON.stringify(data, null, 2),
      stdout: summaryText(scenario, profile, data),
    };
  };
}
