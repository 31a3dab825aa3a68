/**
 * The platform's Prometheus rules as code: RED recording rules, the SLO recording rules and
 * multiwindow multi-burn-rate alerts generated from `alerts/slos.yaml`, and the cause alerts an
 * on-call engineer can act on. Every alert gets, by construction, `severity`, a `summary`, a
 * `description` with values and labels, a `runbook_url` to its section of `docs/runbooks.md` and a
 * `dashboard_url` (kubernetes-mixin's add-runbook-links, done here).
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

const RUNBOOK_BASE = 'https://github.com/codelab-platform/codelab-platform/blob/main/docs/runbooks.md';
const GRAFANA_BASE = 'http://localhost:3000';
const SERVICES = ['auth', 'gateway', 'runtime', 'llm-proxy'] as const;

type Severity = 'critical' | 'warning' | 'info';

export interface AlertRule {
  alert: string;
  expr: string;
  for: string;
  labels: { severity: Severity; [k: string]: string };
  annotations: { summary: string; description: string; runbook_url?: string; dashboard_url?: string };
}
export interface RecordingRule {
  record: string;
  expr: string;
  labels?: Record<string, string>;
}
export interface RuleGroup {
  name: string;
  interval?: string;
  rules: (AlertRule | RecordingRule)[];
}

/** `GatewayHighErrorRate` → `#gatewayhigherrorrate`: the anchor of its runbook section (`## GatewayHighErrorRate`). */
export function runbookAnchor(alert: string): string {
  return alert.toLowerCase();
}

function withLinks(rule: AlertRule, dashboard: string): AlertRule {
  return {
    ...rule,
    annotations: {
      ...rule.annotations,
      runbook_url: `${RUNBOOK_BASE}#${runbookAnchor(rule.alert)}`,
      dashboard_url: `${GRAFANA_BASE}/d/${dashboard}`,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// SLOs

export interface Slo {
  name: string;
  service: (typeof SERVICES)[number];
  journey: string;
  objective: number;
  description: string;
  errors: string;
  total: string;
  threshold_seconds?: number;
}

export function loadSlos(file: string): { period: string; slos: Slo[] } {
  const doc = parse(readFileSync(file, 'utf8')) as { period?: string; slos?: Slo[] };
  const problems: string[] = [];
  if (doc.period !== '30d') problems.push('period must be 30d (the burn-rate factors assume it)');
  const seen = new Set<string>();
  for (const s of doc.slos ?? []) {
    if (!/^[a-z][a-z0-9-]+$/.test(s.name ?? '')) problems.push(`slo name "${s.name}" must be kebab-case`);
    if (seen.has(s.name)) problems.push(`slo ${s.name} is defined twice`);
    seen.add(s.name);
    if (!(SERVICES as readonly string[]).includes(s.service)) problems.push(`slo ${s.name}: unknown service ${s.service}`);
    if (!(s.objective > 0 && s.objective < 1)) problems.push(`slo ${s.name}: objective must be between 0 and 1`);
    for (const k of ['errors', 'total'] as const)
      if (!s[k]?.includes('[{{window}}]')) problems.push(`slo ${s.name}: ${k} must use [{{window}}]`);
  }
  if (!doc.slos?.length) problems.push('no slos');
  if (problems.length) throw new Error(`alerts/slos.yaml: ${problems.join('; ')}`);
  return { period: doc.period!, slos: doc.slos! };
}

/** Google SRE workbook windows for a 30-day period (kubernetes-mixin adds the 1d/2h tier). */
export const BURN_WINDOWS = [
  { severity: 'critical', long: '1h', short: '5m', factor: 14.4, for: '2m' },
  { severity: 'critical', long: '6h', short: '30m', factor: 6, for: '15m' },
  { severity: 'warning', long: '1d', short: '2h', factor: 3, for: '1h' },
  { severity: 'warning', long: '3d', short: '6h', factor: 1, for: '3h' },
] as const;
const SLI_WINDOWS = ['5m', '30m', '1h', '2h', '6h', '1d', '3d', '30d'] as const;

const camel = (kebab: string): string => kebab.replace(/(^|-)([a-z0-9])/g, (_, __, c: string) => c.toUpperCase());
const servicePrefix = (service: string): string => (service === 'llm-proxy' ? 'LlmProxy' : camel(service));
export const sloAlertName = (slo: Slo): string => `${servicePrefix(slo.service)}${camel(slo.name)}BudgetBurn`;

/**
 * Divides every window and `for` by `scale` (tests: 60 turns 1h into 1m): the rules of the
 * end-to-end alerting test are these rules, on a shorter clock.
 */
export function scaleDuration(d: string, scale: number): string {
  if (scale === 1) return d;
  const m = /^(\d+)([smhd])$/.exec(d);
  if (!m) throw new Error(`cannot scale ${d}`);
  const seconds = Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2] as 's' | 'm' | 'h' | 'd'];
  return `${Math.max(1, Math.round(seconds / scale))}s`;
}

export function sloRules(slos: Slo[], opts: { scale?: number } = {}): RuleGroup[] {
  const scale = opts.scale ?? 1;
  const win = (w: string): string => scaleDuration(w, scale);
  const recording: RecordingRule[] = [];
  for (const slo of slos) {
    const labels = { slo: slo.name, service: slo.service };
    for (const w of SLI_WINDOWS) {
      recording.push({
        record: `slo:sli_error:ratio_rate${w}`,
        // no bad event yet is a ratio of 0, not an absent series
        expr: `((${slo.errors.replaceAll('{{window}}', win(w))}) or vector(0)) / (${slo.total.replaceAll('{{window}}', win(w))})`,
        labels,
      });
    }
    recording.push({ record: 'slo:objective:ratio', expr: `vector(${slo.objective})`, labels });
    recording.push({
      record: 'slo:error_budget_remaining:ratio',
      expr: `1 - slo:sli_error:ratio_rate30d{slo="${slo.name}"} / ${+(1 - slo.objective).toFixed(6)}`,
      labels,
    });
  }
  const alerts: AlertRule[] = [];
  for (const slo of slos) {
    const budget = +(1 - slo.objective).toFixed(6);
    for (const w of BURN_WINDOWS) {
      const threshold = +(w.factor * budget).toFixed(6);
      alerts.push(
        withLinks(
          {
            alert: sloAlertName(slo),
            expr:
              `slo:sli_error:ratio_rate${w.long}{slo="${slo.name}"} > ${threshold}\nand\n` +
              `slo:sli_error:ratio_rate${w.short}{slo="${slo.name}"} > ${threshold}`,
            for: win(w.for),
            labels: { severity: w.severity, slo: slo.name, service: slo.service, long: w.long, short: w.short },
            annotations: {
              summary: `${slo.journey}: the ${slo.name} error budget burns ${w.factor}x too fast`,
              description:
                `${slo.description} Over the last ${w.long} {{ $value | humanizePercentage }} of events were bad ` +
                `(objective ${(slo.objective * 100).toFixed(2)}%, burn ${w.factor}x over ${w.long} and ${w.short}): at this rate the 30-day budget lasts ${(30 / w.factor).toFixed(1)} days.`,
            },
          },
          'codelab-slo',
        ),
      );
    }
  }
  return [
    { name: 'codelab-slo-recording', interval: '30s', rules: recording },
    { name: 'codelab-slo-burn-rate', interval: '30s', rules: alerts },
  ];
}

// ---------------------------------------------------------------------------------------------
// RED recording rules, per service and route template

export function redRules(): RuleGroup {
  const m = 'http_server_request_duration_seconds';
  const rules: RecordingRule[] = [
    { record: 'service_route:http_server_requests:rate5m', expr: `sum by (service, route) (rate(${m}_count[5m]))` },
    {
      // no 5xx yet is a ratio of 0, not an absent series
      record: 'service_route:http_server_errors:ratio_rate5m',
      expr: `(sum by (service, route) (rate(${m}_count{status_code=~"5.."}[5m])) or 0 * sum by (service, route) (rate(${m}_count[5m]))) / sum by (service, route) (rate(${m}_count[5m]))`,
    },
    { record: 'service:http_server_requests:rate5m', expr: `sum by (service) (rate(${m}_count[5m]))` },
    {
      record: 'service:http_server_errors:ratio_rate5m',
      expr: `(sum by (service) (rate(${m}_count{status_code=~"5.."}[5m])) or 0 * sum by (service) (rate(${m}_count[5m]))) / sum by (service) (rate(${m}_count[5m]))`,
    },
  ];
  for (const [q, name] of [
    [0.5, 'p50'],
    [0.95, 'p95'],
    [0.99, 'p99'],
  ] as const) {
    rules.push({
      record: `service_route:${m}:${name}_rate5m`,
      expr: `histogram_quantile(${q}, sum by (service, route, le) (rate(${m}_bucket[5m])))`,
    });
    rules.push({ record: `service:${m}:${name}_rate5m`, expr: `histogram_quantile(${q}, sum by (service, le) (rate(${m}_bucket[5m])))` });
  }
  return { name: 'codelab-red', interval: '30s', rules };
}

// ---------------------------------------------------------------------------------------------
// Cause alerts: what an on-call engineer can act on

/**
 * The cause alerts; with `scale`, every `for` and range window divided by it, as `sloRules` does
 * (the fault suite runs them on a clock 20 times faster). Thresholds and texts stay.
 */
export function causeRules(opts: { scale?: number } = {}): RuleGroup[] {
  const scale = opts.scale ?? 1;
  const groups = unscaledCauseRules();
  if (scale === 1) return groups;
  return groups.map((g) => ({
    ...g,
    rules: (g.rules as AlertRule[]).map((r) => ({
      ...r,
      expr: r.expr.replace(/\[(\d+[smhd])(?::(\d+[smhd]))?\]/g, (_, d: string, step?: string) =>
        step ? `[${scaleDuration(d, scale)}:${scaleDuration(step, scale)}]` : `[${scaleDuration(d, scale)}]`,
      ),
      for: scaleDuration(r.for, scale),
    })),
  }));
}

function unscaledCauseRules(): RuleGroup[] {
  const jobs = `job=~"${SERVICES.join('|')}"`;
  const platform: AlertRule[] = [
    withLinks(
      {
        alert: 'CodelabTargetDown',
        // `service` (= job) lets Alertmanager silence the SLO alerts of the service that is down
        expr: `label_replace(up{${jobs}}, "service", "$1", "job", "(.+)") == 0`,
        for: '2m',
        labels: { severity: 'critical' },
        annotations: {
          summary: 'Prometheus cannot scrape {{ $labels.job }}',
          description:
            'The {{ $labels.job }} target {{ $labels.instance }} has not answered /metrics for 2 minutes: the service is down or unreachable.',
        },
      },
      'codelab-overview',
    ),
    withLinks(
      {
        alert: 'CodelabTargetMissing',
        // Service discovery by DNS (Compose) or endpoints (Kubernetes) forgets a replica that is
        // stopped or killed, so `up == 0` never appears for it: compare the number of targets with
        // the most seen in the last hour (0 when the whole service is gone).
        expr:
          `label_replace(max_over_time((count by (job) (up{${jobs}}))[1h:1m]) > ` +
          `(count by (job) (up{${jobs}}) or max_over_time((count by (job) (up{${jobs}}))[1h:1m]) * 0), "service", "$1", "job", "(.+)")`,
        for: '2m',
        labels: { severity: 'critical' },
        annotations: {
          summary: '{{ $labels.job }} has fewer instances than in the last hour',
          description:
            'Prometheus finds fewer {{ $labels.job }} targets than it scraped in the last hour (most: {{ $value }}), for 2 minutes: an instance stopped, was killed or cannot be resolved. It resolves when the instance is back; after a deliberate scale-down, silence it (it ends by itself within the hour).',
        },
      },
      'codelab-overview',
    ),
    withLinks(
      {
        alert: 'CodelabServiceNotReady',
        expr: 'min by (service, check) (service_readiness_check) == 0',
        for: '5m',
        labels: { severity: 'warning' },
        annotations: {
          summary: '{{ $labels.service }} is not ready: {{ $labels.check }} fails',
          description:
            'The readiness check {{ $labels.check }} of {{ $labels.service }} has failed for 5 minutes; /ready answers 503 and load balancers take it out.',
        },
      },
      'codelab-overview',
    ),
    withLinks(
      {
        alert: 'CodelabPostgresPoolSaturated',
        expr: 'max by (service, pool) (db_client_connection_pending_requests) > 0',
        for: '5m',
        labels: { severity: 'warning' },
        annotations: {
          summary: '{{ $labels.service }} waits for PostgreSQL connections',
          description:
            '{{ $value }} queries of {{ $labels.service }} have been waiting for a free connection of pool {{ $labels.pool }} for 5 minutes: the pool is saturated.',
        },
      },
      'codelab-datastores',
    ),
    withLinks(
      {
        alert: 'CodelabEventLoopLag',
        expr: 'max by (job) (nodejs_eventloop_lag_p99_seconds) > 0.2',
        for: '10m',
        labels: { severity: 'warning' },
        annotations: {
          summary: '{{ $labels.job }} event loop lags',
          description:
            'The p99 event-loop delay of {{ $labels.job }} has been {{ $value | humanizeDuration }} for 10 minutes: every request on it waits that long.',
        },
      },
      'codelab-node',
    ),
  ];
  const gateway: AlertRule[] = [
    withLinks(
      {
        alert: 'GatewayWebSocketSlowReaderDrops',
        expr: 'sum(increase(gateway_ws_slow_reader_drops_total[10m])) > 5',
        for: '10m',
        labels: { severity: 'warning' },
        annotations: {
          summary: 'Many WebSocket clients are dropped for reading too slowly',
          description:
            '{{ $value }} connections were closed with 4008 in 10 minutes: clients (or the network to them) cannot keep up with the answers.',
        },
      },
      'codelab-gateway',
    ),
  ];
  const auth: AlertRule[] = [
    withLinks(
      {
        alert: 'AuthRedisUnreachable',
        // The limiter counts one error when it switches to memory and then stops calling Redis until
        // the client reconnects (limiter-store.ts): the state, not a rate of errors, says it is out.
        // Errors > 0 leaves out an auth that never had Redis (npm start), which counts in memory by design.
        expr: 'max by (job) (auth_limiter_backend{backend="memory"}) == 1 and max by (job) (auth_limiter_redis_errors_total) > 0',
        for: '5m',
        labels: { severity: 'warning' },
        annotations: {
          summary: 'auth cannot reach Redis: brute-force limits are per instance',
          description:
            "{{ $labels.job }} has counted lockouts and rate limits in each instance's memory for 5 minutes: Redis is unreachable (it switches back by itself once Redis answers).",
        },
      },
      'codelab-auth',
    ),
    withLinks(
      {
        alert: 'AuthBruteForceWave',
        expr: 'sum(rate(auth_lockouts_total[5m])) * 300 > 20',
        for: '10m',
        labels: { severity: 'warning' },
        annotations: {
          summary: 'Many logins are being locked: a password-guessing wave?',
          description: '{{ $value }} lockouts per 5 minutes for 10 minutes (usernames and client addresses).',
        },
      },
      'codelab-auth',
    ),
    withLinks(
      {
        alert: 'AuthSigningKeyTooOld',
        expr: 'max(auth_signing_key_age_seconds) > 90 * 86400',
        for: '1h',
        labels: { severity: 'warning' },
        annotations: {
          summary: 'The JWT signing key is older than 90 days',
          description: 'The key tokens are signed with is {{ $value | humanizeDuration }} old: rotate it (README, Key rotation).',
        },
      },
      'codelab-auth',
    ),
  ];
  const llm: AlertRule[] = [
    withLinks(
      {
        alert: 'LlmProxyHighErrorRate',
        expr: 'sum by (model) (rate(llm_proxy_requests_total{outcome!~"ok|client_disconnected|invalid_request|invalid_api_key|model_not_found"}[5m])) / sum by (model) (rate(llm_proxy_requests_total[5m])) > 0.1',
        for: '5m',
        labels: { severity: 'warning' },
        annotations: {
          summary: 'The LLM fails {{ $value | humanizePercentage }} of requests for {{ $labels.model }}',
          description:
            'More than 10% of chat completions for {{ $labels.model }} have failed for 5 minutes (upstream errors, timeouts or an open breaker).',
        },
      },
      'codelab-llm',
    ),
    withLinks(
      {
        alert: 'LlmProxyCircuitBreakerOpen',
        expr: 'max by (upstream) (llm_proxy_circuit_breaker_state) == 2',
        for: '1m',
        labels: { severity: 'warning' },
        annotations: {
          summary: 'The circuit breaker of upstream {{ $labels.upstream }} is open',
          description:
            'Requests to {{ $labels.upstream }} fail fast (503) or go to a fallback model: the upstream failed repeatedly and its probes keep failing.',
        },
      },
      'codelab-llm',
    ),
  ];
  return [
    { name: 'codelab-platform-causes', rules: platform },
    { name: 'codelab-gateway-causes', rules: gateway },
    { name: 'codelab-auth-causes', rules: auth },
    { name: 'codelab-llm-causes', rules: llm },
  ];
}
