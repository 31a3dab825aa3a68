/**
 * A real Prometheus (Debian's `prometheus`) for the tests: the shipped scrape jobs
 * (deploy/prometheus/prometheus.yml) pointed at the ports the test started the services on, every
 * second, with the rule files and Alertmanager the test gives. Tests skip with
 * `missingProgram('prometheus', 'prometheus')` where it is not installed.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { findProgram, freePort, waitForHttp } from '@codelab/service-kit/testing';
import { REPO_ROOT } from './processes.ts';

export interface PrometheusOptions {
  /** Job of the shipped config → base URL of the service it scrapes (jobs not named are left out). */
  targets: Record<string, string>;
  /** Rule files to evaluate (every second). */
  ruleFiles?: string[];
  /** `host:port` of an Alertmanager to send alerts to. */
  alertmanager?: string;
  /** Where its config and TSDB go (a new temporary directory by default). */
  dir?: string;
}

/** One series of an instant query: its labels and value at the query's time. */
interface PromSample {
  metric: Record<string, string>;
  value: number;
}

export interface Prometheus {
  url: string;
  /** An instant query, at `time` (epoch seconds) or now; throws with Prometheus' error. */
  query(expr: string, time?: number): Promise<PromSample[]>;
  /** The timestamps (epoch seconds) of the scrapes of `job` between `from` and `to`. */
  scrapeTimes(job: string, from: number, to: number): Promise<number[]>;
  close(): Promise<void>;
}

interface ShippedConfig {
  scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
}

export async function startPrometheus(opts: PrometheusOptions): Promise<Prometheus> {
  const dir = opts.dir ?? (await mkdtemp(path.join(tmpdir(), 'codelab-prom-')));
  const shipped = parse(readFileSync(path.join(REPO_ROOT, 'deploy', 'prometheus', 'prometheus.yml'), 'utf8')) as ShippedConfig;
  const unknown = Object.keys(opts.targets).filter((job) => !shipped.scrape_configs.some((s) => s.job_name === job));
  if (unknown.length) throw new Error(`deploy/prometheus/prometheus.yml has no job ${unknown.join(', ')}`);
  const config = {
    global: { scrape_interval: '1s', evaluation_interval: '1s' },
    ...(opts.ruleFiles?.length ? { rule_files: opts.ruleFiles } : {}),
    ...(opts.alertmanager ? { alerting: { alertmanagers: [{ static_configs: [{ targets: [opts.alertmanager] }] }] } } : {}),
    scrape_configs: shipped.scrape_configs
      .filter((s) => opts.targets[s.job_name])
      .map((s) => ({ ...s, static_configs: [{ targets: [new URL(opts.targets[s.job_name]!).host] }] })),
  };
  await writeFile(path.join(dir, 'prometheus.yml'), stringify(config));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(
    findProgram('prometheus')!,
    [
      `--config.file=${path.join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(dir, 'tsdb')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--enable-feature=exemplar-storage',
    ],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const close = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  try {
    await waitForHttp(`${url}/-/ready`, 30_000);
  } catch (err) {
    await close();
    throw err;
  }

  const api = async (endpoint: string, params: Record<string, string>): Promise<unknown> => {
    const res = await fetch(`${url}/api/v1/${endpoint}?${new URLSearchParams(params)}`);
    const body = (await res.json()) as { status: string; error?: string; data?: { result: unknown } };
    if (body.status !== 'success') throw new Error(`${params.query}: ${body.error}`);
    return body.data!.result;
  };
  return {
    url,
    close,
    query: async (expr, time) => {
      const result = (await api('query', { query: expr, ...(time !== undefined ? { time: String(time) } : {}) })) as {
        metric: Record<string, string>;
        value: [number, string];
      }[];
      return result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
    },
    scrapeTimes: async (job, from, to) => {
      // the raw samples of `up` are the scrapes; a range selector at `to` returns them unchanged
      const seconds = Math.max(1, Math.ceil(to - from));
      const result = (await api('query', { query: `up{job="${job}"}[${seconds}s]`, time: String(to) })) as { values: [number, string][] }[];
      return (result[0]?.values ?? []).map(([t]) => t).filter((t) => t >= from);
    },
  };
}
