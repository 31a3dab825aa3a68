/**
 * The rules are code that is proven: generated files up to date, accepted by promtool, every alert
 * unit-tested on both sides of its `for`, every alert with severity, summary, description, a runbook
 * section that exists and a dashboard, no unbounded label, and an Alertmanager config amtool accepts.
 */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import type { Histogram } from 'prom-client';
import { ServiceMetrics } from '@codelab/service-kit';
import { findProgram, missingProgram } from '@codelab/service-kit/testing';
import { createAuthMetrics } from '@codelab/auth/metrics';
import { createGatewayMetrics } from '@codelab/gateway/metrics';
import { createLlmProxyMetrics } from '@codelab/llm-proxy/metrics';
import { createRuntimeMetrics } from '@codelab/runtime/metrics';
import { ALERTS_DIR, renderRuleFiles } from '../src/generate.ts';
import { causeRules, loadSlos, runbookAnchor, type AlertRule, type RuleGroup } from '../src/rules.ts';

const REPO = path.resolve(ALERTS_DIR, '..');
const generated = path.join(ALERTS_DIR, 'generated');
const ruleFiles = readdirSync(generated).filter((f) => f.endsWith('.rules.yml'));
const groups = ruleFiles.flatMap((f) => (parse(readFileSync(path.join(generated, f), 'utf8')) as { groups: RuleGroup[] }).groups);
const alerts = groups.flatMap((g) => g.rules).filter((r): r is AlertRule => 'alert' in r);
const DASHBOARDS = [
  'codelab-overview',
  'codelab-gateway',
  'codelab-runtime',
  'codelab-llm',
  'codelab-auth',
  'codelab-datastores',
  'codelab-node',
  'codelab-slo',
];
/** Label names whose values are unbounded: they belong in traces and logs, never in series. */
const UNBOUNDED = ['user', 'user_id', 'username', 'session', 'session_id', 'ip', 'client_ip', 'trace_id', 'span_id', 'jti', 'sub', 'token'];

describe('alert and recording rules', () => {
  it('are generated from alerts/slos.yaml and the generator, and the committed files are up to date', () => {
    for (const [file, text] of Object.entries(renderRuleFiles())) {
      expect(readFileSync(path.join(generated, file), 'utf8'), `${file} is stale: run npm run alerts`).toBe(text);
    }
  });

  it.skipIf(missingProgram('promtool', 'prometheus'))('pass promtool check rules', () => {
    const out = execFileSync(findProgram('promtool')!, ['check', 'rules', ...ruleFiles.map((f) => path.join(generated, f))], {
      encoding: 'utf8',
    });
    expect(out).not.toContain('FAILED');
  });

  it.skipIf(missingProgram('promtool', 'prometheus'))(
    'pass their promtool unit tests',
    () => {
      const tests = [
        path.join(generated, 'slo-alerts.test.yml'),
        ...readdirSync(path.join(ALERTS_DIR, 'tests')).map((f) => path.join(ALERTS_DIR, 'tests', f)),
      ];
      // promtool exits non-zero when any test fails; execFileSync then throws with its output
      const out = execFileSync(findProgram('promtool')!, ['test', 'rules', ...tests], { encoding: 'utf8' });
      expect(out.match(/SUCCESS/g)).toHaveLength(tests.length);
    },
    // a hang guard, not a speed limit: ~20 s alone, over 3 minutes on 2 busy cores (the 30-day SLO
    // windows make promtool evaluate every recording rule at every step)
    15 * 60_000,
  );

  it('give every alert a unit test that checks it fires, with its labels and annotations', () => {
    const testText = [
      path.join(generated, 'slo-alerts.test.yml'),
      ...readdirSync(path.join(ALERTS_DIR, 'tests')).map((f) => path.join(ALERTS_DIR, 'tests', f)),
    ]
      .map((f) => readFileSync(f, 'utf8'))
      .join('\n');
    const untested = [...new Set(alerts.map((a) => a.alert))].filter(
      (name) => !new RegExp(`alertname: ${name}\\n\\s+exp_alerts:\\n\\s+- exp_labels`).test(testText),
    );
    expect(untested).toEqual([]);
  });

  it('give every alert a severity, a summary, a description, a runbook section that exists and a dashboard', () => {
    const runbook = readFileSync(path.join(REPO, 'docs', 'runbooks.md'), 'utf8');
    const anchors = new Set([...runbook.matchAll(/^#{2,3} (\S+)\s*$/gm)].map((m) => runbookAnchor(m[1]!)));
    const problems: string[] = [];
    for (const a of alerts) {
      if (!['critical', 'warning', 'info'].includes(a.labels.severity)) problems.push(`${a.alert}: severity ${a.labels.severity}`);
      if (!a.annotations.summary || !a.annotations.description) problems.push(`${a.alert}: summary and description are required`);
      if (!/\{\{ *\$(value|labels)/.test(a.annotations.description + a.annotations.summary))
        problems.push(`${a.alert}: the description should carry values or labels`);
      const anchor = a.annotations.runbook_url?.split('#')[1];
      if (!anchor || !anchors.has(anchor)) problems.push(`${a.alert}: runbook anchor #${anchor} not in docs/runbooks.md`);
      const uid = a.annotations.dashboard_url?.split('/d/')[1];
      if (!uid || !DASHBOARDS.includes(uid)) problems.push(`${a.alert}: dashboard ${uid} unknown`);
      if (!/^[A-Z][A-Za-z0-9]+$/.test(a.alert)) problems.push(`${a.alert}: alert names are CamelCase`);
    }
    expect(problems).toEqual([]);
  });

  it('never use an unbounded label (user, session, IP…) in a series or an alert', () => {
    const problems: string[] = [];
    for (const rule of groups.flatMap((g) => g.rules)) {
      const name = 'alert' in rule ? rule.alert : rule.record;
      for (const m of rule.expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) {
        for (const label of m[1]!.split(',').map((l) => l.trim()))
          if (UNBOUNDED.includes(label)) problems.push(`${name} aggregates by ${label}`);
      }
      for (const label of Object.keys(rule.labels ?? {})) if (UNBOUNDED.includes(label)) problems.push(`${name} sets label ${label}`);
    }
    expect(problems).toEqual([]);
  });
});

describe('cause alerts on a faster clock (the fault suite)', () => {
  it('divide every for and range window by the scale, and keep expressions, thresholds and texts otherwise', () => {
    const plain = causeRules().flatMap((g) => g.rules as AlertRule[]);
    const fast = causeRules({ scale: 20 }).flatMap((g) => g.rules as AlertRule[]);
    expect(fast.map((r) => r.alert)).toEqual(plain.map((r) => r.alert));
    const target = fast.find((r) => r.alert === 'CodelabTargetDown')!;
    expect(target.for).toBe('6s'); // 2m / 20
    const drops = fast.find((r) => r.alert === 'GatewayWebSocketSlowReaderDrops')!;
    expect(drops.expr).toBe('sum(increase(gateway_ws_slow_reader_drops_total[30s])) > 5'); // [10m] / 20
    expect(drops.for).toBe('30s');
    const missing = fast.find((r) => r.alert === 'CodelabTargetMissing')!;
    expect(missing.expr).toContain('[180s:3s]'); // a subquery's range and step: [1h:1m] / 20
    expect(missing.expr).not.toContain('1h');
    for (const [i, r] of fast.entries()) {
      const p = plain[i]!;
      const windows = /\[\d+[smhd](:\d+[smhd])?\]/g;
      expect(r.expr.replace(windows, '[w]'), r.alert).toBe(p.expr.replace(windows, '[w]'));
      expect({ ...r, expr: '', for: '' }, r.alert).toEqual({ ...p, expr: '', for: '' });
    }
  });
});

describe('SLOs', () => {
  /** The bucket boundaries of every histogram the services define, by metric name. */
  function histogramBounds(): Map<string, readonly number[]> {
    const out = new Map<string, readonly number[]>();
    const services: [string, (m: ServiceMetrics) => unknown][] = [
      ['auth', createAuthMetrics],
      ['gateway', createGatewayMetrics],
      ['runtime', createRuntimeMetrics],
      ['llm-proxy', (m) => createLlmProxyMetrics(m, ['fake-llm'])],
    ];
    for (const [name, create] of services) {
      const m = new ServiceMetrics(name);
      create(m);
      for (const metric of m.registry.getMetricsAsArray()) {
        const bounds = (metric as unknown as Partial<Histogram & { upperBounds: number[] }>).upperBounds;
        if (bounds) out.set((metric as unknown as { name: string }).name, bounds);
      }
    }
    return out;
  }

  it('put every latency threshold on a bucket boundary of the histogram its SLI reads', () => {
    const bounds = histogramBounds();
    const problems: string[] = [];
    const latency = loadSlos(path.join(ALERTS_DIR, 'slos.yaml')).slos.filter((s) => s.threshold_seconds !== undefined);
    expect(latency.length).toBeGreaterThanOrEqual(4);
    for (const slo of latency) {
      const reads = [...slo.errors.matchAll(/(\w+)_bucket\{[^}]*le="([^"]+)"/g)];
      if (reads.length !== 1) problems.push(`${slo.name}: its errors should read one bucket, read ${reads.length}`);
      for (const [, metric, le] of reads) {
        if (Number(le) !== slo.threshold_seconds)
          problems.push(`${slo.name}: reads le="${le}" for a threshold of ${slo.threshold_seconds} s`);
        const b = bounds.get(metric!);
        if (!b) problems.push(`${slo.name}: no service defines the histogram ${metric}`);
        else if (!b.includes(slo.threshold_seconds!))
          problems.push(`${slo.name}: ${slo.threshold_seconds} s is not a bucket boundary of ${metric} (${b.join(', ')})`);
      }
    }
    expect(problems).toEqual([]);
  });
});

describe('Alertmanager configuration', () => {
  const file = path.join(REPO, 'deploy', 'alertmanager', 'alertmanager.yml');

  it.skipIf(missingProgram('amtool', 'prometheus-alertmanager'))('passes amtool check-config', () => {
    const out = execFileSync(findProgram('amtool')!, ['check-config', file], { encoding: 'utf8' });
    expect(out).toContain('SUCCESS');
  });

  it.skipIf(missingProgram('amtool', 'prometheus-alertmanager'))(
    'routes critical to the pager, warning to tickets and info nowhere',
    () => {
      const route = (labels: string) =>
        execFileSync(findProgram('amtool')!, ['config', 'routes', 'test', `--config.file=${file}`, ...labels.split(' ')], {
          encoding: 'utf8',
        }).trim();
      expect(route('severity=critical service=auth alertname=X')).toBe('pager');
      expect(route('severity=warning service=auth alertname=X')).toBe('ticket');
      expect(route('severity=info service=auth alertname=X')).toBe('annotate-only');
    },
  );
});
