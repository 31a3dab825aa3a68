/**
 * The load-test report: from a synthetic chat run (a ramp, a stall that drops iterations and slows
 * the first token, a few failed turns) the driver writes summary.json, timeline.json and a
 * self-contained report.html, which headless Chromium loads from disk without a console error or a
 * network request, showing the verdict, one row per threshold in red or green, and charts with drawn
 * data; a screenshot is taken. Without chromium the browser test skips naming `apt-get install
 * chromium`, except under CI=true, where it fails.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { missingProgram } from '@codelab/service-kit/testing';
import { Schedule } from '../driver/arrival.ts';
import { Registry } from '../driver/metrics.ts';
import { DEFAULT_THRESHOLDS } from '../driver/options.ts';
import { writeReports, type ReportFiles } from '../driver/report/index.ts';
import { buildSummary, formatSummary, type Summary, type TimelineData } from '../driver/report/summary.ts';
import { niceScale, renderChart } from '../driver/report/svg.ts';
import { BUILTIN_METRICS, loadThresholds } from '../driver/run.ts';
import { chat } from '../driver/scenarios/chat.ts';
import { bindThresholds } from '../driver/thresholds.ts';

const CHROMIUM = '/usr/bin/chromium';

/** 40 s of a chat run, sampled on a fake clock: deterministic. */
function syntheticRun(): { summary: Summary; timeline: TimelineData } {
  let now = 0;
  const registry = new Registry([...BUILTIN_METRICS, ...chat.metrics], { now: () => now, bucketSeconds: 1 });
  registry.breakdown('checks', 'check');
  const thresholds = loadThresholds(DEFAULT_THRESHOLDS, 'chat');
  bindThresholds(thresholds, registry);
  const arrival = {
    executor: 'ramping-arrival-rate' as const,
    startRate: 0,
    timeUnit: '1s' as const,
    preAllocatedVUs: 10,
    maxVUs: 20,
    stages: [
      { duration: '10s', target: 4 },
      { duration: '25s', target: 4 },
      { duration: '5s', target: 0 },
    ],
  };
  const schedule = new Schedule(arrival);
  registry.start(0);
  let started = 0;
  let dropped = 0;
  let k = 0;
  for (const t of schedule.starts()) {
    now = t * 1000;
    k++;
    const stalled = t >= 18 && t < 22; // the platform stalls: VUs run out, first tokens are late
    if (stalled && k % 2 === 0) {
      dropped++;
      registry.add('dropped_iterations', 1);
      continue;
    }
    started++;
    registry.add('iterations_started', 1);
    registry.add('vus', 2 + (k % 5) + (stalled ? 8 : 0));
    for (let turn = 0; turn < 6; turn++) {
      const ttft = (stalled ? 2800 : 120) + ((k * 37 + turn * 11) % 90);
      registry.add('chat_time_to_first_token', ttft, { frame: 'user_message' });
      registry.add('chat_turn_duration', ttft + 300 + ((k * 13) % 200));
      for (let g = 0; g < 5; g++) registry.add('chat_inter_token_gap', 10 + ((k + g) % 9));
      const failed = stalled && turn >= 3;
      registry.add('chat_turns_failed', failed);
      registry.add('checks', !failed, { check: 'the turn ends with a final frame that is not an error' });
    }
    registry.add('checks', true, { check: 'the conversation WebSocket opens' });
    registry.add('ws_sessions', 1);
    now += 1500;
    registry.add('iterations', 1);
    registry.add('iteration_duration', 1500);
  }
  now = 41_500;
  const { summary, timeline } = buildSummary({
    scenario: 'chat',
    profile: 'ci',
    description: chat.description,
    arrival,
    schedule,
    result: {
      started,
      dropped,
      completed: started,
      failed: 0,
      interrupted: 0,
      maxAllocatedVUs: 20,
      scheduleSeconds: 40,
      elapsedSeconds: 41.5,
      aborted: false,
    },
    registry,
    thresholds,
    aborted: null,
    startedAt: new Date('2026-11-28T08:00:00Z'),
    endedAt: new Date('2026-11-28T08:00:41.500Z'),
    durationScale: 1,
    gracefulStop: 30,
    targets: { gateway: 'http://127.0.0.1:8000', auth: 'http://127.0.0.1:8003' },
    keyMetrics: { latency: 'chat_turn_duration', errors: 'chat_turns_failed', ttft: 'chat_time_to_first_token' },
  });
  return { summary, timeline };
}

describe('load-test report', () => {
  let dir: string;
  let files: ReportFiles;
  let run: ReturnType<typeof syntheticRun>;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'load-report-'));
    run = syntheticRun();
    files = await writeReports(dir, run.summary, run.timeline);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('summarizes the run: failed on dropped iterations, failed turns and slow first tokens, every threshold evaluated', async () => {
    const s = JSON.parse(await readFile(files.summary, 'utf8')) as Summary;
    expect(s).toMatchObject({ scenario: 'chat', profile: 'ci', verdict: 'failed', exitCode: 99 });
    expect(s.failedThresholds).toEqual([
      'dropped_iterations: count==0',
      'checks: rate>0.99',
      'chat_time_to_first_token: p(95)<2500',
      'chat_turns_failed: rate<0.01',
    ]);
    expect(s.thresholds).toHaveLength(7);
    expect(s.metrics.dropped_iterations).toMatchObject({ type: 'counter', count: s.executor.dropped });
    expect(s.metrics.chat_time_to_first_token).toMatchObject({ type: 'trend', unit: 'ms', count: s.executor.started * 6 });
    for (const key of ['p50', 'p90', 'p95', 'p99', 'max', 'min', 'avg', 'rate'] as const)
      expect(typeof s.metrics.chat_time_to_first_token![key]).toBe('number');
    expect(s.checks.map((c) => c.name)).toEqual([
      'the turn ends with a final frame that is not an error',
      'the conversation WebSocket opens',
    ]);
    expect(formatSummary(s)).toMatch(
      /✗ dropped_iterations\s+count==0\s+actual \d+[\s\S]*FAILED: 4 threshold\(s\) failed: dropped_iterations: count==0; checks: rate>0.99; chat_time_to_first_token/,
    );
    const tl = JSON.parse(await readFile(files.timeline, 'utf8')) as TimelineData;
    expect(tl.t).toHaveLength(42);
    expect(tl.target[20]).toBeCloseTo(4);
    expect(tl.dropped.slice(18, 22).reduce((a, b) => a + b, 0)).toBe(s.executor.dropped);
    expect(Math.max(...tl.ttft!.p95.filter((v): v is number => v !== null))).toBeGreaterThan(2500);
    expect(tl.ttft!.limits).toEqual([{ label: 'p(95)<2500', value: 2500 }]);
  });

  it('is self-contained: inline CSS and SVG, no script, nothing to fetch', async () => {
    const html = await readFile(files.html, 'utf8');
    expect(html).not.toMatch(/<script|<link|@import|url\(|src=|https?:\/\/(?!127\.0\.0\.1|www\.w3\.org\/2000\/svg)/);
    expect(html.match(/<svg class="chart"/g)).toHaveLength(5);
  });

  it('draws charts with round axes, threshold limits and a tooltip per bucket', () => {
    expect(niceScale(2700)).toEqual({ max: 3000, step: 1000 }); // 2700/5 = 540 → steps of 1000
    expect(niceScale(0)).toEqual({ max: 1, step: 0.25 });
    const svg = renderChart({
      id: 'c',
      title: 't',
      t: [0, 1, 2, 3],
      bucketSeconds: 1,
      unit: 'ms',
      limits: [{ label: 'p(95)<250', value: 250 }],
      series: [{ name: 'p95', color: '#000', values: [100, null, 200, 240] }],
    });
    expect(svg).toMatch(/<path class="series" data-series="p95" data-points="3" d="M[\d.,]+L[\d.,]+M[\d.,]+L[\d.,]+"/); // broken at the gap
    expect(svg).toContain('threshold p(95)&lt;250');
    expect(svg.match(/<rect class="band"/g)).toHaveLength(4);
  });

  const noChromium = !existsSync(CHROMIUM) && missingProgram('chromium', 'chromium');
  it.skipIf(noChromium)(
    'renders in headless Chromium (Debian chromium: apt-get install chromium) without errors: verdict, threshold rows, charts with data, a screenshot',
    async () => {
      const { chromium } = await import('playwright-core');
      const browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
        ],
      });
      try {
        const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
        const problems: string[] = [];
        const external: string[] = [];
        page.on('console', (m) => {
          if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
        });
        page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
        page.on('request', (r) => {
          if (!r.url().startsWith('file:')) external.push(r.url());
        });
        await page.goto(pathToFileURL(files.html).href, { waitUntil: 'load' });

        expect(await page.title()).toBe('FAILED · chat/ci load test');
        // biome-ignore lint/performance/useDomNodeTextContent: Playwright's Locator.innerText(), the rendered text (not the DOM property)
        expect(await page.locator('#verdict').innerText()).toBe('FAILED');
        const rows = page.locator('#thresholds tbody tr');
        expect(await rows.count()).toBe(run.summary.thresholds.length);
        expect(await page.locator('#thresholds tbody tr.fail').count()).toBe(4);
        expect(await page.locator('#thresholds tbody tr.pass').count()).toBe(3);
        // failed rows are red, passed ones green
        const color = (sel: string) =>
          page
            .locator(sel)
            .first()
            .evaluate((el) => getComputedStyle(el).color);
        expect(await color('#thresholds tr.fail td.result')).toBe('rgb(217, 54, 62)');
        expect(await color('#thresholds tr.pass td.result')).toBe('rgb(47, 158, 68)');
        // biome-ignore lint/performance/useDomNodeTextContent: Playwright's Locator.innerText(), the rendered text (not the DOM property)
        expect(await page.locator('#thresholds tr.fail').first().innerText()).toMatch(/dropped_iterations\s+count==0\s+\d+/);

        for (const id of ['chart-latency', 'chart-throughput', 'chart-errors', 'chart-ttft', 'chart-vus']) {
          const chart = page.locator(`svg#${id}`);
          expect(await chart.count(), id).toBe(1);
          const box = await chart.boundingBox();
          expect(box!.width, id).toBeGreaterThan(500);
          const paths = chart.locator('path.series');
          expect(await paths.count(), id).toBeGreaterThanOrEqual(1);
          // every chart draws data: paths with many points and a real extent on screen
          const drawn = await paths.evaluateAll((els) =>
            els.map((el) => {
              const p = el as SVGPathElement;
              const b = p.getBBox();
              return {
                points: Number(p.dataset.points),
                segments: (p.getAttribute('d') ?? '').split(/[ML]/).length - 1,
                length: p.getTotalLength(),
                width: b.width,
              };
            }),
          );
          expect(Math.max(...drawn.map((d) => d.points)), id).toBeGreaterThan(10);
          expect(Math.max(...drawn.map((d) => d.length)), id).toBeGreaterThan(100);
          expect(Math.max(...drawn.map((d) => d.width)), id).toBeGreaterThan(300);
        }
        // the TTFT chart shows the threshold line
        expect(await page.locator('svg#chart-ttft .limit text').textContent()).toBe('threshold p(95)<2500');
        expect(await page.locator('#metrics tbody tr').count()).toBeGreaterThan(8);

        const png = path.join(dir, 'report.png');
        await page.screenshot({ path: png, fullPage: true });
        const head = (await readFile(png)).subarray(0, 8);
        expect(head.equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
        expect((await stat(png)).size).toBeGreaterThan(30_000);
        if (process.env.LOAD_REPORT_SCREENSHOT) await (await import('node:fs/promises')).copyFile(png, process.env.LOAD_REPORT_SCREENSHOT);

        expect(problems).toEqual([]);
        expect(external).toEqual([]);
      } finally {
        await browser.close();
      }
    },
    60_000,
  );
});
