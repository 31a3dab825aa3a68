/**
 * Telemetry truth: the figures an on-call engineer reads against what the clients measured, in the
 * same run. The four services run as processes behind a mock LLM whose latency has spread (seeded
 * exponential draws, a few injected failures), with a network between the gateway and the runtime
 * (seeded too: REST calls take what they take in a deployment, not the few milliseconds of loopback
 * where the client's own share, its event loop and the kernel, would weigh as much as the service's).
 * A real Prometheus scrapes them every second while the Node load driver runs api, then chat. Over
 * exactly the run's window (from the first gateway scrape after the warm-up to the first one after
 * the run), the dashboards' own panel queries, read from the generated JSON, and the turn-completion
 * SLI of alerts/slos.yaml must read each figure within 10% of the clients': turns and REST requests
 * counted, error rates, time to first token p50/p95/p99, turn duration p95, REST latency p95.
 *
 * It times things, so it runs alone, after the other suites (vitest project `timing`).
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { missingProgram } from '@codelab/service-kit/testing';
import { loadSlos } from '../../alerts/src/rules.ts';
import { allPanelQueries } from '../../dashboards/src/lib.ts';
import { seededRandom } from '@codelab/llm-proxy/mock';
import { parseOptions, type LoadOptions } from '../../loadtests/driver/options.ts';
import type { Summary } from '../../loadtests/driver/report/summary.ts';
import { runLoad } from '../../loadtests/driver/run.ts';
import { REPO_ROOT, startPlatformProcesses, type PlatformProcesses } from '../helpers/processes.ts';
import { startPrometheus, type Prometheus } from '../helpers/prometheus.ts';
import { createStackUser, FrameClient, passwordToken } from '../helpers/stack.ts';

/** How far Prometheus may read from the client: 10%. */
const TOLERANCE = 0.1;

/** The mock LLM: exponential first-token and per-token delays (seeded), 3% of calls failing, no retry to hide them. */
const LLM_PROFILE = {
  LLM_PROXY__MOCK_LATENCY_DISTRIBUTION: 'exponential',
  LLM_PROXY__MOCK_TTFT_MS: '200',
  LLM_PROXY__MOCK_TOKEN_DELAY_MS: '10',
  LLM_PROXY__MOCK_SEED: '18',
  LLM_PROXY__MOCK_ERROR_RATE: '0.03',
  LLM_PROXY__MAX_RETRIES: '0',
};

/** The network between the gateway and the runtime: 30 ms plus an exponential draw of mean 40 ms (p95 ≈ 150 ms). */
function runtimeLatency(): () => number {
  const random = seededRandom(18);
  return () => 30 - 40 * Math.log(1 - random());
}

/** Discards what the driver prints (its summary is returned). */
class Discard extends Writable {
  override _write(_chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    cb();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(missingProgram('prometheus', 'prometheus'))(
  'telemetry truth: Prometheus and the dashboards against the load client',
  () => {
    let platform: PlatformProcesses;
    let prometheus: Prometheus;
    let user: { username: string; password: string };
    let outRoot: string;

    beforeAll(async () => {
      platform = await startPlatformProcesses({
        databaseUrl: inject('databaseUrl'),
        env: { 'llm-proxy': LLM_PROFILE },
        runtimeLatencyMs: runtimeLatency(),
      });
      prometheus = await startPrometheus({ dir: platform.dataDir, targets: platform.urls });
      user = await createStackUser(inject('databaseUrl'), 'truth');
      outRoot = await mkdtemp(path.join(tmpdir(), 'telemetry-truth-'));
    }, 120_000);

    afterAll(async () => {
      await prometheus?.close();
      await platform?.stop();
      if (outRoot) await rm(outRoot, { recursive: true, force: true });
    });

    const load = async (scenario: 'chat' | 'api', profile: string, durationScale: number): Promise<Summary> => {
      const opts = parseOptions(
        [
          scenario,
          ...['--profile', profile, '--duration-scale', String(durationScale), '--no-progress'],
          // every turn ends (a turn cut at the end of the run fails for the client, not for the gateway)
          ...['--graceful-stop', '120'],
          ...['--gateway', platform.gateway.url, '--auth', platform.auth.url, '--llm', platform.llm.url],
          ...['--username', user.username, '--password', user.password],
          ...['--out', path.join(outRoot, `${scenario}-${profile}-${durationScale}`)],
        ],
        {},
      ) as LoadOptions;
      const outcome = await runLoad(opts, { stdout: new Discard(), stderr: new Discard() });
      if (!outcome.summary) throw new Error(`the ${scenario} run did not start: ${outcome.error}`);
      return outcome.summary;
    };

    /** The time of the first scrape of `job` at or after `after` (epoch seconds), once Prometheus has it. */
    const scrapeAfter = async (job: string, after: number): Promise<number> => {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const [first] = await prometheus.scrapeTimes(job, after, Date.now() / 1000 + 1);
        if (first !== undefined) return first;
        if (Date.now() > deadline) throw new Error(`Prometheus has no scrape of ${job} after ${new Date(after * 1000).toISOString()}`);
        await sleep(200);
      }
    };

    it('reads every headline figure of a load run within 10% of what the clients measured', async ({ annotate }) => {
      // every series the run touches exists before its window (a series born inside it loses its first
      // increments to rate()): turns that end well and one that fails, and each REST route
      await load('chat', 'smoke', 0.1);
      await load('api', 'smoke', 0.1);
      const client = new FrameClient(`${platform.gateway.url.replace(/^http/, 'ws')}/api/v1/ws/truth-${randomUUID()}`, {
        authorization: `Bearer ${await passwordToken(platform.auth.url, user.username, user.password)}`,
      });
      await client.open();
      client.send({ type: 'user_message', content: 'fail [[mock:error 503]]' });
      await client.until((f) => f.is_final === true && f.type === 'error');
      client.close();
      await client.closed();

      // 15 s of the smoke profile of api (10 rounds a second, 750 requests), then ~55 s of the load
      // profile of chat (4 conversations a second, ~540 first tokens): one after the other, so that
      // neither client's event loop is busy with the other's traffic while it times its own
      const start = await scrapeAfter('gateway', Date.now() / 1000);
      const api = await load('api', 'smoke', 1.5);
      const chat = await load('chat', 'load', 0.14);
      const end = await scrapeAfter('gateway', Date.now() / 1000);

      // the panels' queries over exactly [start, end]: rate() × window is then the increase
      const windowMs = Math.round((end - start) * 1000) + 1;
      const windowSeconds = windowMs / 1000;
      const panels = allPanelQueries({ rateInterval: `${windowMs}ms` });
      /** A query of a panel of the gateway dashboard, where every figure checked here is shown. */
      const gateway = (title: string, refId = 'A'): string => {
        const q = panels.find((p) => p.dashboard === 'codelab-gateway' && p.panel === title && p.refId === refId);
        if (!q) throw new Error(`no query ${refId} in panel "${title}" of codelab-gateway`);
        return q.expr;
      };
      const at = async (expr: string): Promise<number[]> => (await prometheus.query(expr, end)).map((s) => s.value);
      const one = async (expr: string): Promise<number> => {
        const values = await at(expr);
        if (values.length !== 1) throw new Error(`${expr} returned ${values.length} series`);
        return values[0]!;
      };
      const sum = async (expr: string): Promise<number> => (await at(expr)).reduce((a, b) => a + b, 0);
      const turnCompletion = loadSlos(path.join(REPO_ROOT, 'alerts', 'slos.yaml')).slos.find((s) => s.name === 'turn-completion')!;
      const sli = (expr: string): string => expr.replaceAll('{{window}}', `${windowMs}ms`);

      const m = { chat: chat.metrics, api: api.metrics };
      const restNames = Object.keys(m.api).filter((k) => k.startsWith('http_req_duration{name:') && k.includes(' /api/v1/'));
      const ms = (v: number | null | undefined): number => (v ?? NaN) / 1000;
      const figures: { figure: string; prometheus: number; client: number }[] = [
        { figure: 'turns', prometheus: (await sum(gateway('Turns by outcome'))) * windowSeconds, client: m.chat.chat_turns_failed!.count },
        {
          figure: 'turn error rate',
          prometheus: await one(`(${sli(turnCompletion.errors)}) / (${sli(turnCompletion.total)})`),
          client: m.chat.chat_turns_failed!.value!,
        },
        {
          figure: 'time to first token p50',
          prometheus: await one(gateway('Turn time to first token', 'A')),
          client: ms(m.chat.chat_time_to_first_token!.p50),
        },
        {
          figure: 'time to first token p95',
          prometheus: await one(gateway('Turn time to first token', 'B')),
          client: ms(m.chat.chat_time_to_first_token!.p95),
        },
        {
          figure: 'time to first token p99',
          prometheus: await one(gateway('Turn time to first token', 'C')),
          client: ms(m.chat.chat_time_to_first_token!.p99),
        },
        {
          figure: 'turn duration p95',
          prometheus: await one(gateway('Turn duration p95 by outcome', 'A')),
          client: ms(m.chat.chat_turn_duration!.p95),
        },
        {
          figure: 'REST requests',
          prometheus: (await sum(gateway('REST API requests by status'))) * windowSeconds,
          client: restNames.reduce((n, k) => n + m.api[k]!.count, 0),
        },
        {
          figure: 'REST error rate (5xx)',
          prometheus: await one(gateway('REST API error ratio (5xx)')),
          client: m.api.http_req_failed!.value!,
        },
        { figure: 'REST latency p95', prometheus: await one(gateway('REST API latency', 'B')), client: ms(m.api.http_req_duration!.p95) },
      ];

      const ratio = (f: (typeof figures)[number]): number => (f.prometheus === f.client ? 1 : f.prometheus / f.client);
      const table = figures.map(
        (f) => `${f.figure}: Prometheus ${f.prometheus.toPrecision(4)}, client ${f.client.toPrecision(4)}, ratio ${ratio(f).toFixed(3)}`,
      );
      const run = `window ${windowSeconds.toFixed(1)} s; chat ${chat.executor.started} conversations (${chat.executor.dropped} dropped, ${m.chat.chat_time_to_first_token!.count} first tokens), api ${api.executor.started} rounds (${api.executor.dropped} dropped)`;
      await annotate([run, ...table].join('\n'), 'figures');
      // a comparison means something only with traffic, spread and a few failures on both sides; a p99
      // read from fewer first tokens than this is the order statistic's noise, not the histogram's
      expect(m.chat.chat_time_to_first_token!.count, run).toBeGreaterThanOrEqual(450);
      expect(m.chat.chat_turns_failed!.passes, run).toBeGreaterThan(0);
      expect(restNames.length, run).toBe(5);
      const off = figures
        .filter((f) => !(Math.abs(ratio(f) - 1) <= TOLERANCE))
        .map(
          (f) =>
            `${f.figure}: Prometheus reads ${ratio(f).toFixed(3)}× the client (${f.prometheus.toPrecision(4)} vs ${f.client.toPrecision(4)})`,
        );
      expect(off, `${run}\n${table.join('\n')}`).toEqual([]);
    }, 300_000);
  },
);
