/** SLOs: error budget left and burn rates over the multiwindow, multi-burn-rate alert windows, per SLO of `alerts/slos.yaml`. */
import { RowBuilder, type Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import { codelabDashboard, finish, labelVariable, stat, timeseries, UNITS } from './lib.ts';
import * as q from './queries/slo.ts';

export const uid = 'codelab-slo';

/** The alert pairs: page at 14.4× (1h and 5m) and 6× (6h and 30m); ticket at 3× (1d and 2h) and 1× (3d and 6h). */
const PAIRS = [
  { long: '1h', short: '5m', factor: 14.4, severity: 'page' },
  { long: '6h', short: '30m', factor: 6, severity: 'page' },
  { long: '1d', short: '2h', factor: 3, severity: 'ticket' },
  { long: '3d', short: '6h', factor: 1, severity: 'ticket' },
] as const;

export function sloDashboard(): Dashboard {
  let d = codelabDashboard(
    uid,
    'CodeLab / SLOs',
    'Error budget left over 30 days and burn rates of every SLO of alerts/slos.yaml, over the windows of the multiwindow, multi-burn-rate alerts.',
    ['slo'],
  )
    .withVariable(labelVariable('slo', 'slo:error_budget_remaining:ratio', 'slo', 'SLO name (alerts/slos.yaml)'))
    .withRow(new RowBuilder('Error budget'))
    .withPanel(
      stat({
        title: 'Error budget left (30 days)',
        description: 'Share of the 30-day error budget not yet spent, per SLO: 100% untouched, 0% spent, negative overspent.',
        unit: UNITS.percentUnit,
        queries: [{ expr: q.errorBudgetRemaining(), legend: '{{slo}}', instant: true }],
        thresholds: [
          { value: null, color: 'red' },
          { value: 0.25, color: 'orange' },
          { value: 0.5, color: 'green' },
        ],
        w: 16,
        h: 6,
      }),
    )
    .withPanel(
      stat({
        title: 'Objective',
        description: 'The objective of each SLO: the share of good events it promises over 30 days.',
        unit: UNITS.percentUnit,
        queries: [{ expr: q.objective(), legend: '{{slo}}', instant: true }],
        w: 8,
        h: 6,
      }),
    )
    .withPanel(
      timeseries({
        title: 'Error budget left over time',
        description: 'Share of the 30-day error budget not yet spent, per SLO.',
        unit: UNITS.percentUnit,
        queries: [{ expr: q.errorBudgetRemaining(), legend: '{{slo}}' }],
        w: 12,
      }),
    )
    .withPanel(
      timeseries({
        title: 'SLI error ratio (30 days)',
        description: 'Share of bad events over the 30-day period, per SLO (the budget is 1 − objective).',
        unit: UNITS.percentUnit,
        queries: [{ expr: q.errorRatio('30d'), legend: '{{slo}}' }],
        min: 0,
        w: 12,
      }),
    )
    .withRow(new RowBuilder('Burn rates'));
  for (const pair of PAIRS) {
    d = d.withPanel(
      timeseries({
        title: `Burn rate ${pair.long} / ${pair.short} (${pair.severity} at ${pair.factor}×)`,
        description: `How fast each SLO spends its error budget over ${pair.long} and ${pair.short} (1 = the budget lasts exactly 30 days). The ${pair.severity} alert fires when both windows exceed ${pair.factor}.`,
        unit: UNITS.none,
        queries: [
          { expr: q.burnRate(pair.long), legend: `{{slo}} ${pair.long}` },
          { expr: q.burnRate(pair.short), legend: `{{slo}} ${pair.short}` },
        ],
        thresholds: [
          { value: null, color: 'green' },
          { value: pair.factor, color: 'red' },
        ],
        min: 0,
      }),
    );
  }
  return finish(d);
}
