/**
 * One load run: check the targets are ready, set the scenario up, drive it with the arrival-rate
 * executor along its profile while the abortOnFail thresholds are watched, then evaluate every
 * threshold, write the reports and print the summary. `main` is the CLI (scripts/load.ts): it
 * returns the exit code — 0 passed, 99 a threshold failed (k6's code), 2 bad arguments or
 * configuration, 1 setup failed, 105 interrupted.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { profile as profileOf } from '../lib/profiles.ts';
import { ArrivalRateExecutor, Schedule } from './arrival.ts';
import { Http, HTTP_METRICS } from './http.ts';
import { Registry, type MetricDef } from './metrics.ts';
import { parseOptions, USAGE, UsageError, type LoadOptions } from './options.ts';
import { Progress } from './progress.ts';
import { writeReports, type ReportFiles } from './report/index.ts';
import { buildSummary, EXIT, formatSummary, type Summary } from './report/summary.ts';
import { SCENARIO_IMPLS } from './scenarios/index.ts';
import { ensureReady } from './scenarios/token.ts';
import { Recorder, SetupError, type ScenarioEnv, type Service } from './scenarios/types.ts';
import { abortingThreshold, bindThresholds, describeThreshold, parseThresholds, type Threshold, type ThresholdSpec } from './thresholds.ts';

export const BUILTIN_METRICS: MetricDef[] = [
  { name: 'iterations', type: 'counter', description: 'iterations completed' },
  { name: 'iteration_duration', type: 'trend', unit: 'ms', description: 'one iteration, start to end' },
  { name: 'iterations_started', type: 'counter', description: 'iterations started on schedule' },
  { name: 'dropped_iterations', type: 'counter', description: 'iterations not started: no VU was free' },
  { name: 'interrupted_iterations', type: 'counter', description: 'iterations cut at the end of the graceful stop or by an abort' },
  { name: 'checks', type: 'rate', description: 'share of checks passed' },
  { name: 'vus', type: 'gauge', description: 'busy VUs' },
  { name: 'vus_max', type: 'gauge', description: 'allocated VUs' },
  ...HTTP_METRICS,
];

const SERVICE_NAMES: Record<Service, string> = { gateway: 'gateway', auth: 'auth service', llm: 'llm-proxy' };

export interface RunIO {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Aborting it stops the run like Ctrl-C: reports are written, exit code 105. */
  signal?: AbortSignal;
}

export interface RunOutcome {
  exitCode: number;
  summary?: Summary;
  files?: ReportFiles;
  /** Why the run did not start (exit 1 or 2). */
  error?: string;
}

export function loadThresholds(file: string, scenario: string): Threshold[] {
  let all: Record<string, Record<string, ThresholdSpec[]>>;
  try {
    all = JSON.parse(readFileSync(file, 'utf8')) as typeof all;
  } catch (err) {
    throw new UsageError(`cannot read thresholds from ${file}: ${(err as Error).message}`);
  }
  const spec = all[scenario];
  if (!spec) throw new UsageError(`${file} has no thresholds for scenario ${scenario}`);
  try {
    return parseThresholds(spec);
  } catch (err) {
    throw new UsageError(`${file}: ${(err as Error).message}`);
  }
}

export async function runLoad(opts: LoadOptions, io: RunIO): Promise<RunOutcome> {
  const impl = SCENARIO_IMPLS[opts.scenario];
  const prof = profileOf(opts.scenario, opts.profile);
  const planned = new Schedule(prof, opts.durationScale);
  const registry = new Registry([...BUILTIN_METRICS, ...impl.metrics], {
    bucketSeconds: planned.duration + opts.gracefulStop > 600 ? 5 : 1,
  });
  registry.breakdown('http_req_duration', 'name');
  registry.breakdown('checks', 'check');
  let thresholds: Threshold[];
  try {
    thresholds = loadThresholds(opts.thresholdsFile, opts.scenario);
    bindThresholds(thresholds, registry);
  } catch (err) {
    const msg = (err as Error).message;
    io.stderr.write(`error: ${msg}\n`);
    return { exitCode: EXIT.usage, error: msg };
  }

  const http = new Http(registry, { connections: prof.maxVUs + 4, timeoutMs: opts.httpTimeout * 1000 });
  const metrics = new Recorder(registry);
  const env: ScenarioEnv = {
    targets: opts.targets,
    username: opts.username,
    password: opts.password,
    passwordSource: opts.passwordSource,
    llmKey: opts.llmKey,
    http,
    metrics,
    turnTimeoutMs: opts.turnTimeout * 1000,
  };
  let state: unknown;
  try {
    for (const svc of impl.needs)
      await ensureReady(http, SERVICE_NAMES[svc], opts.targets[svc], opts.readyPath.replaceAll('{target}', svc), `--${svc}`);
    state = await impl.setup(env);
  } catch (err) {
    await http.close().catch(() => undefined);
    const msg = err instanceof SetupError ? err.message : `setup failed unexpectedly: ${(err as Error).stack ?? String(err)}`;
    io.stderr.write(`error: ${opts.scenario} setup failed: ${msg}\n`);
    return { exitCode: EXIT.setupFailed, error: msg };
  }

  const controller = new AbortController();
  let aborted: Summary['aborted'] = null;
  const onSignal = (): void => {
    if (controller.signal.aborted) return;
    aborted = { by: 'signal', atSeconds: Math.round(registry.elapsed() * 10) / 10 };
    controller.abort(new Error('interrupted'));
  };
  if (io.signal?.aborted) onSignal();
  io.signal?.addEventListener('abort', onSignal, { once: true });

  let iterationErrors = 0;
  const executor = new ArrivalRateExecutor({
    profile: prof,
    durationScale: opts.durationScale,
    gracefulStop: opts.gracefulStop,
    signal: controller.signal,
    iteration: (ctx) => impl.iteration(state, ctx, env),
    events: {
      started: (at) => registry.add('iterations_started', 1, undefined, at),
      dropped: (at) => registry.add('dropped_iterations', 1, undefined, at),
      finished: (ms, ok, error) => {
        registry.add('iterations', 1);
        registry.add('iteration_duration', ms);
        if (!ok) {
          metrics.check('iteration: no exception', false);
          if (++iterationErrors <= 5) {
            progress?.clear();
            io.stderr.write(
              `iteration failed: ${(error as Error)?.stack ?? String(error)}${iterationErrors === 5 ? '\n(further iteration errors are counted, not printed)' : ''}\n`,
            );
          }
        }
      },
      interrupted: () => {
        registry.add('interrupted_iterations', 1);
        metrics.check('the iteration finished before the run was cut', false);
      },
      vus: (busy, allocated) => {
        registry.add('vus', busy);
        registry.add('vus_max', allocated);
      },
    },
  });
  const label = `${opts.scenario}/${opts.profile}`;
  const progress = opts.progress
    ? new Progress(
        {
          label,
          schedule: executor.schedule,
          state: executor.state,
          registry,
          latencyMetric: impl.ttftMetric ?? impl.latencyMetric,
          errorMetric: impl.errorMetric,
        },
        io.stderr,
        opts.progressInterval,
      )
    : undefined;
  const startedAt = new Date();
  registry.start();
  registry.add('vus', 0);
  registry.add('vus_max', prof.preAllocatedVUs);
  progress?.start();
  // abortOnFail thresholds are evaluated every second once their delayAbortEval has passed
  const watcher = setInterval(() => {
    if (controller.signal.aborted) return;
    const failing = abortingThreshold(thresholds, registry, registry.elapsed());
    if (failing) {
      aborted = { by: 'threshold', threshold: describeThreshold(failing), atSeconds: Math.round(registry.elapsed() * 10) / 10 };
      controller.abort(new Error(`threshold ${describeThreshold(failing)} failed`));
    }
  }, 1000);
  let result;
  try {
    result = await executor.run();
  } finally {
    clearInterval(watcher);
    io.signal?.removeEventListener('abort', onSignal);
    progress?.stop();
  }
  try {
    await impl.teardown?.(state, env);
  } finally {
    await http.close().catch(() => undefined);
  }
  const endedAt = new Date();

  const { summary, timeline } = buildSummary({
    scenario: opts.scenario,
    profile: opts.profile,
    description: impl.description,
    arrival: prof,
    schedule: executor.schedule,
    result,
    registry,
    thresholds,
    aborted: aborted as Summary['aborted'],
    startedAt,
    endedAt,
    durationScale: opts.durationScale,
    gracefulStop: opts.gracefulStop,
    targets: Object.fromEntries(impl.needs.map((s) => [s, opts.targets[s]])),
    keyMetrics: { latency: impl.latencyMetric, errors: impl.errorMetric, ...(impl.ttftMetric ? { ttft: impl.ttftMetric } : {}) },
  });
  const exitCode = summary.exitCode;
  let files: ReportFiles | undefined;
  try {
    files = await writeReports(opts.out, summary, timeline);
  } catch (err) {
    io.stderr.write(`error: could not write the reports to ${opts.out}: ${(err as Error).message}\n`);
  }
  const rel = files ? path.relative(process.cwd(), files.html) : undefined;
  const shown = files ? (rel && !rel.startsWith('..') ? rel : files.html) : undefined;
  io.stdout.write(formatSummary(summary, shown));
  const limited = http.statuses.get(429) ?? 0;
  if (limited > 0) {
    io.stdout.write(
      `  note: ${limited} response(s) were 429 (rate limited)${opts.scenario === 'auth' ? ': the auth service limits /oauth/token per address; start it with AUTH_SERVICE__ENABLE_RATE_LIMITING=false (or a higher AUTH_SERVICE__RATE_LIMIT_PER_IP) for load tests' : ''}\n`,
    );
  }
  return { exitCode, summary, ...(files ? { files } : {}) };
}

/** The CLI: parses argv (without node and the script) and runs; returns the exit code. */
export async function main(
  argv: string[],
  io: RunIO = { stdout: process.stdout, stderr: process.stderr },
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  let opts;
  try {
    opts = parseOptions(argv, env);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr.write(`error: ${err.message}\n(npm run load -- --help for the options)\n`);
    return EXIT.usage;
  }
  if (opts === 'help') {
    io.stdout.write(USAGE);
    return EXIT.passed;
  }
  return (await runLoad(opts, io)).exitCode;
}
