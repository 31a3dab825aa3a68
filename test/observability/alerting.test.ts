/**
 * An alert end to end, with the real programs: the mock LLM fails, a real Prometheus evaluates the
 * shipped SLO rules (on a clock 60 times faster: 1h windows become 1 min), the LLM availability
 * page reaches the pager webhook through a real Alertmanager with the shipped routing; the LLM
 * heals and the resolved notification arrives.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { findProgram, freePort, missingProgram, TEST_INTERNAL_KEY, waitForHttp } from '@codelab/service-kit/testing';
import { loadSlos, sloRules } from '../../alerts/src/rules.ts';
import { REPO_ROOT, startProcess, type RunningProcess } from '../helpers/processes.ts';
import { startPrometheus, type Prometheus } from '../helpers/prometheus.ts';

interface Notification {
  receiver: string;
  status: 'firing' | 'resolved';
  alerts: { status: string; labels: Record<string, string>; annotations: Record<string, string> }[];
}

const noPrometheus = missingProgram('prometheus', 'prometheus');
const noAlertmanager = missingProgram('prometheus-alertmanager', 'prometheus-alertmanager');

describe.skipIf(noPrometheus || noAlertmanager)('LLM failure → page → resolved', () => {
  const notifications: { path: string; body: Notification }[] = [];
  let webhook: Server;
  let llm: RunningProcess;
  const children: ChildProcess[] = [];
  let prometheus: Prometheus;
  let stopTraffic = false;
  let failing = true;
  let traffic: Promise<void>;

  beforeAll(async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'codelab-alerting-'));
    webhook = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        notifications.push({ path: req.url ?? '', body: JSON.parse(body) as Notification });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((ok) => webhook.listen(0, '127.0.0.1', ok));
    const hook = `http://127.0.0.1:${(webhook.address() as { port: number }).port}`;

    llm = await startProcess('llm-proxy', {
      CODELAB_DATA_DIR: dir,
      LLM_PROXY__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
      LLM_PROXY__MOCK_TTFT_MS: '0',
      LLM_PROXY__MOCK_TOKEN_DELAY_MS: '0',
    });

    // the shipped routing, with the test's receivers and short waits
    const am = parse(await readFile(path.join(REPO_ROOT, 'deploy', 'alertmanager', 'alertmanager.yml'), 'utf8')) as {
      route: Record<string, unknown>;
      receivers: { name: string; webhook_configs?: { url: string }[] }[];
    };
    Object.assign(am.route, { group_wait: '1s', group_interval: '1s', repeat_interval: '1h' });
    for (const r of am.receivers) for (const w of r.webhook_configs ?? []) w.url = `${hook}${new URL(w.url).pathname}`;
    await writeFile(path.join(dir, 'alertmanager.yml'), stringify(am));
    const amPort = await freePort();
    children.push(
      spawn(
        findProgram('prometheus-alertmanager')!,
        [
          `--config.file=${path.join(dir, 'alertmanager.yml')}`,
          `--storage.path=${path.join(dir, 'am')}`,
          `--web.listen-address=127.0.0.1:${amPort}`,
          '--cluster.listen-address=',
        ],
        { stdio: 'ignore' },
      ),
    );
    await waitForHttp(`http://127.0.0.1:${amPort}/-/ready`, 30_000);

    // the shipped SLO rules for the LLM, 60 times faster
    const { slos } = loadSlos(path.join(REPO_ROOT, 'alerts', 'slos.yaml'));
    const groups = sloRules(
      slos.filter((s) => s.name === 'llm-availability'),
      { scale: 60 },
    ).map((g) => ({ ...g, interval: '1s' }));
    await writeFile(path.join(dir, 'slo.rules.yml'), stringify({ groups }));
    prometheus = await startPrometheus({
      dir,
      targets: { 'llm-proxy': llm.url },
      ruleFiles: [path.join(dir, 'slo.rules.yml')],
      alertmanager: `127.0.0.1:${amPort}`,
    });

    // steady traffic: failing while `failing`, healthy afterwards
    traffic = (async () => {
      while (!stopTraffic) {
        await fetch(`${llm.url}/v1/chat/completions`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'x-internal-auth': TEST_INTERNAL_KEY,
            ...(failing ? { 'x-mock': '[[mock:error 503]]' } : {}),
          },
          body: JSON.stringify({ model: 'fake-llm', messages: [{ role: 'user', content: 'hello' }] }),
        })
          .then((r) => r.arrayBuffer())
          .catch(() => undefined);
        await new Promise((r) => setTimeout(r, failing ? 50 : 5));
      }
    })();
  }, 90_000);

  afterAll(async () => {
    stopTraffic = true;
    await traffic;
    await prometheus?.close();
    for (const c of children) c.kill('SIGTERM');
    await llm?.stop();
    webhook?.close();
  });

  const waitFor = async (pred: () => boolean, timeoutMs: number, what: string): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > deadline)
        throw new Error(
          `${what} did not arrive within ${timeoutMs} ms; got ${JSON.stringify(notifications.map((n) => [n.path, n.body.status, n.body.alerts.map((a) => `${a.labels.alertname}/${a.labels.long}`)]))}`,
        );
      await new Promise((r) => setTimeout(r, 250));
    }
  };
  const page = (status: 'firing' | 'resolved') => (n: { path: string; body: Notification }) =>
    n.path === '/pager' &&
    n.body.alerts.some((a) => a.labels.alertname === 'LlmProxyLlmAvailabilityBudgetBurn' && a.labels.long === '1h' && a.status === status);

  it('pages through the pager webhook while the LLM fails, and resolves once it heals', async () => {
    await waitFor(() => notifications.some(page('firing')), 60_000, 'the page');
    const firing = notifications.find(page('firing'))!.body.alerts.find((a) => a.labels.long === '1h')!;
    expect(firing.labels).toMatchObject({ severity: 'critical', slo: 'llm-availability', service: 'llm-proxy' });
    expect(firing.annotations.runbook_url).toMatch(/runbooks\.md#llmproxyllmavailabilitybudgetburn$/);
    expect(notifications.every((n) => n.path === '/pager' || !n.body.alerts.some((a) => a.labels.severity === 'critical'))).toBe(true);

    failing = false; // the LLM heals
    await waitFor(() => notifications.some(page('resolved')), 90_000, 'the resolved notification');
  }, 180_000);
});
