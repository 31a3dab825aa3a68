/**
 * `report.html`: one self-contained page (inline CSS and SVG, no script, nothing fetched) that
 * says at a glance whether the run passed: a header with the scenario, profile and verdict, the
 * thresholds in red and green, charts over time (latency percentiles, throughput against the
 * target rate with dropped iterations, errors, time to first token, busy VUs), every metric, and
 * the checks.
 */
import { formatActual, shown, type Summary, type TimelineData } from './summary.ts';
import { esc, formatTime, formatValue, renderChart } from './svg.ts';

const COLORS = {
  p50: '#3b82c4',
  p95: '#e8890c',
  p99: '#d9363e',
  target: '#8a9099',
  started: '#1c64b8',
  completed: '#2f9e44',
  dropped: '#d9363e',
  errors: '#d9363e',
  checks: '#e8890c',
  vus: '#7048e8',
};

const CSS = `
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1d2129;background:#f4f5f7}
main{max-width:980px;margin:0 auto;padding:20px 24px 48px}
header{display:flex;align-items:center;gap:16px;flex-wrap:wrap;margin-bottom:6px}
h1{font-size:22px;margin:0}
h2{font-size:16px;margin:28px 0 10px}
.verdict{font-weight:700;font-size:15px;padding:4px 14px;border-radius:999px;color:#fff;letter-spacing:.04em}
.verdict.passed{background:#2f9e44}.verdict.failed{background:#d9363e}
.sub{color:#5c6370;margin:2px 0}
.abort{background:#fff0f0;border:1px solid #f5c2c4;color:#a4161a;padding:8px 12px;border-radius:6px;margin:10px 0}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:10px;margin:16px 0}
.tile{background:#fff;border-radius:8px;padding:10px 14px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.tile .k{color:#5c6370;font-size:12px}.tile .v{font-size:20px;font-weight:600}
.tile.bad .v{color:#d9363e}
table{border-collapse:collapse;width:100%;background:#fff;border-radius:8px;overflow:hidden;box-shadow:0 1px 2px rgba(0,0,0,.08)}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #eceef1;font-variant-numeric:tabular-nums}
th{background:#fafbfc;font-weight:600;color:#3d434d;font-size:12px;text-transform:uppercase;letter-spacing:.03em}
td.num,th.num{text-align:right}
tr.pass td.result{color:#2f9e44;font-weight:600}
tr.fail td.result{color:#d9363e;font-weight:600}
tr.fail{background:#fff5f5}
tr.sub td:first-child{padding-left:26px;color:#5c6370}
code{font:12.5px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.card{background:#fff;border-radius:8px;padding:10px 12px 4px;margin-bottom:14px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
svg.chart{display:block;font-size:11px}
svg .chart-title{font-size:13px;font-weight:600;fill:#1d2129}
svg .legend text{fill:#3d434d}
svg .grid{stroke:#eceef1}
svg .axis,svg .xtick{stroke:#9aa0a8}
svg .tick{fill:#6b717b}
svg .series{fill:none;stroke-width:2;stroke-linejoin:round;stroke-linecap:round}
svg .area{opacity:.15;stroke:none}
svg .limit line{stroke:#d9363e;stroke-dasharray:6 4;stroke-width:1.2}
svg .limit text{fill:#d9363e;font-size:11px}
svg .band{fill:transparent}
svg .band:hover{fill:rgba(30,40,60,.07)}
svg .nodata{fill:#9aa0a8;font-size:13px}
footer{color:#7a808a;font-size:12px;margin-top:28px}
`;

const fmt = (v: number | null | undefined, unit?: string): string =>
  v === null || v === undefined ? '–' : unit === 'ms' ? formatValue(v, 'ms') : formatValue(v, '');

/** Busy VUs are only sampled when they change: carry the last value forward. */
function forwardFill(values: (number | null)[]): (number | null)[] {
  let last: number | null = null;
  return values.map((v) => (v === null ? last : (last = v)));
}

export function renderReport(s: Summary, tl: TimelineData): string {
  const passed = s.verdict === 'passed';
  const ex = s.executor;
  const m = s.metrics;
  const lat = m[s.keyMetrics.latency];
  const err = m[s.keyMetrics.errors];
  const ttft = s.keyMetrics.ttft ? m[s.keyMetrics.ttft] : undefined;
  const thresholdFailedOn = new Set(s.thresholds.filter((t) => !t.passed).map((t) => t.metric));

  const tile = (k: string, v: string, bad = false): string =>
    `<div class="tile${bad ? ' bad' : ''}"><div class="k">${esc(k)}</div><div class="v">${esc(v)}</div></div>`;
  const tiles = [
    tile('iterations started', `${ex.started} / ${ex.expectedIterations}`),
    tile('dropped iterations', String(ex.dropped), ex.dropped > 0),
    tile(`p95 ${s.keyMetrics.latency}`, fmt(lat?.p95, lat?.unit), thresholdFailedOn.has(s.keyMetrics.latency)),
    tile(
      s.keyMetrics.errors,
      err ? `${((err.value ?? 0) * 100).toFixed(2)}% (${err.passes}/${err.count})` : '–',
      thresholdFailedOn.has(s.keyMetrics.errors),
    ),
    ...(ttft ? [tile(`p95 ${s.keyMetrics.ttft}`, fmt(ttft.p95, 'ms'), thresholdFailedOn.has(s.keyMetrics.ttft!))] : []),
    tile('checks', m.checks ? `${((m.checks.value ?? 0) * 100).toFixed(2)}%` : '–', thresholdFailedOn.has('checks')),
  ].join('');

  const thresholdRows = s.thresholds
    .map(
      (t) =>
        `<tr class="${t.passed ? 'pass' : 'fail'}"><td><code>${esc(t.metric)}</code></td><td><code>${esc(t.expression)}</code>${t.abortOnFail ? ` <span class="sub">abortOnFail after ${esc(t.delayAbortEval ?? '0s')}</span>` : ''}</td><td class="num">${esc(formatActual(t, m))}</td><td class="num">${t.samples}</td><td class="result">${t.passed ? '✓ passed' : '✗ failed'}</td></tr>`,
    )
    .join('\n');

  const common = { t: tl.t, bucketSeconds: tl.bucketSeconds };
  const bucket = `${tl.bucketSeconds} s buckets`;
  const pctChart = (id: string, title: string, p: NonNullable<TimelineData['ttft']>): string =>
    renderChart({
      ...common,
      id,
      title,
      unit: 'ms',
      limits: p.limits,
      series: [
        { name: 'p50', color: COLORS.p50, values: p.p50 },
        { name: 'p95', color: COLORS.p95, values: p.p95 },
        { name: 'p99', color: COLORS.p99, values: p.p99 },
      ],
    });
  const charts = [
    pctChart('chart-latency', `Latency: ${tl.latency.metric} p50 / p95 / p99 (${bucket})`, tl.latency),
    renderChart({
      ...common,
      id: 'chart-throughput',
      title: `Throughput: iterations/s started vs target, completed, dropped`,
      unit: '/s',
      series: [
        { name: 'target', color: COLORS.target, values: tl.target, dashed: true },
        { name: 'started', color: COLORS.started, values: tl.started },
        { name: 'completed', color: COLORS.completed, values: tl.completed },
        { name: 'dropped', color: COLORS.dropped, values: tl.dropped, area: true },
      ],
    }),
    renderChart({
      ...common,
      id: 'chart-errors',
      title: `Errors: failed ${tl.errors.metric} and failed checks per second`,
      unit: '/s',
      series: [
        { name: `failed (${tl.errors.metric})`, color: COLORS.errors, values: tl.errors.failed, area: true },
        { name: 'failed checks', color: COLORS.checks, values: tl.failedChecks },
      ],
    }),
    ...(tl.ttft ? [pctChart('chart-ttft', `Time to first token: ${tl.ttft.metric} p50 / p95 / p99 (${bucket})`, tl.ttft)] : []),
    renderChart({
      ...common,
      id: 'chart-vus',
      title: 'Busy VUs (iterations in flight)',
      unit: '',
      height: 180,
      series: [{ name: 'busy VUs', color: COLORS.vus, values: forwardFill(tl.vus), area: true }],
    }),
  ]
    .map((c) => `<div class="card">${c}</div>`)
    .join('\n');

  const metricRows = Object.entries(m)
    .filter(([k, v]) => !k.startsWith('checks{') && shown(k, v, s.thresholds))
    .map(([k, v]) => {
      const isSub = k.includes('{');
      const mark = thresholdFailedOn.has(k) ? ' class="fail"' : '';
      const cls = isSub ? ' class="sub"' : mark;
      const cells =
        v.type === 'trend'
          ? [
              fmt(v.p50, v.unit),
              fmt(v.p90, v.unit),
              fmt(v.p95, v.unit),
              fmt(v.p99, v.unit),
              fmt(v.min, v.unit),
              fmt(v.max, v.unit),
              fmt(v.avg, v.unit),
            ]
              .map((c) => `<td class="num">${esc(c)}</td>`)
              .join('')
          : `<td colspan="7">${esc(v.type === 'rate' ? `${((v.value ?? 0) * 100).toFixed(2)}% · ${v.passes} of ${v.count} true` : v.type === 'gauge' ? `value ${fmt(v.value)} · min ${fmt(v.min)} · max ${fmt(v.max)}` : '')}</td>`;
      return `<tr${cls}><td><code>${esc(isSub ? k.slice(k.indexOf('{')) : k)}</code></td><td>${v.type}</td><td class="num">${esc(fmt(v.count))}</td><td class="num">${esc(fmt(v.rate))}</td>${cells}</tr>`;
    })
    .join('\n');

  const checkRows = s.checks
    .map(
      (c) =>
        `<tr class="${c.fails ? 'fail' : 'pass'}"><td>${esc(c.name)}</td><td class="num">${c.passes}</td><td class="num">${c.fails}</td><td class="result">${c.fails ? '✗' : '✓'}</td></tr>`,
    )
    .join('\n');

  const abort = s.aborted
    ? `<div class="abort">Run aborted after ${s.aborted.atSeconds.toFixed(1)} s: ${s.aborted.by === 'threshold' ? `threshold <code>${esc(s.aborted.threshold)}</code> failed (abortOnFail)` : 'interrupted'}.</div>`
    : '';
  const failedList = s.failedThresholds.length
    ? `<p class="sub">Failed: ${s.failedThresholds.map((f) => `<code>${esc(f)}</code>`).join(', ')}</p>`
    : '';

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(`${passed ? 'PASSED' : 'FAILED'} · ${s.scenario}/${s.profile} load test`)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
<header><h1>Load test: ${esc(s.scenario)} · ${esc(s.profile)}</h1><span class="verdict ${passed ? 'passed' : 'failed'}" id="verdict">${passed ? 'PASSED' : 'FAILED'}</span></header>
<p class="sub">${esc(s.description)}</p>
<p class="sub">Started ${esc(s.startedAt)} · ran ${s.durationSeconds.toFixed(1)} s of ${s.plannedSeconds.toFixed(1)} s planned${s.durationScale !== 1 ? ` (stage durations ×${s.durationScale})` : ''} · ramping-arrival-rate, ${ex.preAllocatedVUs}–${ex.maxVUs} VUs, stages ${esc(ex.stages.map((st) => `${st.duration}→${st.target}/s`).join(', '))} · targets ${esc(Object.values(s.targets).join(', '))}</p>
${abort}${failedList}
<div class="tiles">${tiles}</div>
<h2>Thresholds</h2>
<table id="thresholds"><thead><tr><th>metric</th><th>threshold</th><th class="num">actual</th><th class="num">samples</th><th>result</th></tr></thead>
<tbody>
${thresholdRows}
</tbody></table>
<h2>Over time</h2>
${charts}
<h2>Metrics</h2>
<table id="metrics"><thead><tr><th>metric</th><th>type</th><th class="num">count</th><th class="num">rate/s</th><th class="num">p50</th><th class="num">p90</th><th class="num">p95</th><th class="num">p99</th><th class="num">min</th><th class="num">max</th><th class="num">avg</th></tr></thead>
<tbody>
${metricRows}
</tbody></table>
${s.checks.length ? `<h2>Checks</h2><table id="checks"><thead><tr><th>check</th><th class="num">passed</th><th class="num">failed</th><th></th></tr></thead><tbody>\n${checkRows}\n</tbody></table>` : ''}
<footer>Node load driver (npm run load) · ${ex.started} iterations started, ${ex.dropped} dropped, ${ex.interrupted} interrupted · run ${formatTime(s.durationSeconds)} · exit code ${s.exitCode} · data: summary.json, timeline.json</footer>
</main>
</body>
</html>
`;
}
