/**
 * The shipped rules against live traffic: the four services run as processes, a real Prometheus
 * scrapes them with the generated rules, a short traffic mix runs (with errors), and then every
 * recording rule and every dashboard panel query must return at least one series, and every metric
 * an alert or a panel names must exist in a scrape.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { parse, stringify } from 'yaml';
import { findProgram, freePort, missingProgram, TEST_INTERNAL_KEY, waitForHttp } from '@codelab/service-kit/testing';
import { createUser } from '../../services/auth/src/users.ts';
import { FrameClient, passwordToken } from '../helpers/stack.ts';
import { REPO_ROOT, startProcess, type RunningProcess } from '../helpers/processes.ts';
import type { AlertRule, RecordingRule, RuleGroup } from '../../alerts/src/rules.ts';
import { allPanelQueries, metricNamesOf } from '../../dashboards/src/lib.ts';

const GENERATED = path.join(REPO_ROOT, 'alerts', 'generated');
const ruleGroups = (): RuleGroup[] =>
  readdirSync(GENERATED)
    .filter((f) => f.endsWith('.rules.yml'))
    .flatMap((f) => (parse(readFileSync(path.join(GENERATED, f), 'utf8')) as { groups: RuleGroup[] }).groups);

describe.skipIf(missingProgram('prometheus', 'prometheus'))('rules and dashboards against a real Prometheus and live traffic', () => {
  const procs: RunningProcess[] = [];
  let prometheus: ChildProcess;
  let promUrl: string;
  let gateway: RunningProcess;
  let auth: RunningProcess;

  const query = async (expr: string): Promise<unknown[]> => {
    const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await res.json()) as { status: string; error?: string; data?: { result: unknown[] } };
    if (body.status !== 'success') throw new Error(`${expr}: ${body.error}`);
    return body.data!.result;
  };

  beforeAll(async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'codelab-prom-'));
    const common = { CODELAB_DATA_DIR: dir };
    const llm = await startProcess('llm-proxy', { ...common, LLM_PROXY__INTERNAL_API_KEY: TEST_INTERNAL_KEY, LLM_PROXY__MOCK_TTFT_MS: '0', LLM_PROXY__MOCK_TOKEN_DELAY_MS: '0' });
    auth = await startProcess('auth', { ...common, AUTH_SERVICE__INTERNAL_API_KEY: TEST_INTERNAL_KEY, AUTH_SERVICE__DB_URL: inject('databaseUrl'), AUTH_SERVICE__ENABLE_RATE_LIMITING: 'false' });
    const runtime = await startProcess('runtime', { ...common, AGENT_RUNTIME__INTERNAL_API_KEY: TEST_INTERNAL_KEY, AGENT_RUNTIME__DB_URL: inject('databaseUrl'), AGENT_RUNTIME__LLM_PROXY_URL: llm.url });
    gateway = await startProcess('gateway', { ...common, GATEWAY__INTERNAL_API_KEY: TEST_INTERNAL_KEY, GATEWAY__AGENT_URL: runtime.url, GATEWAY__AUTH_SERVICE_URL: auth.url });
    procs.push(gateway, runtime, auth, llm);

    // the shipped rules, evaluated every second instead of every 30 s
    for (const f of readdirSync(GENERATED).filter((x) => x.endsWith('.rules.yml'))) {
      const doc = parse(readFileSync(path.join(GENERATED, f), 'utf8')) as { groups: RuleGroup[] };
      for (const g of doc.groups) g.interval = '1s';
      await writeFile(path.join(dir, f), stringify(doc));
    }
    const shipped = parse(readFileSync(path.join(REPO_ROOT, 'deploy', 'prometheus', 'prometheus.yml'), 'utf8')) as {
      global: Record<string, string>;
      scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
    };
    const ports: Record<string, string> = { gateway: gateway.url, runtime: runtime.url, 'llm-proxy': llm.url, auth: auth.url };
    const config = {
      global: { scrape_interval: '1s', evaluation_interval: '1s' },
      rule_files: [path.join(dir, '*.rules.yml')],
      scrape_configs: shipped.scrape_configs.map((s) => ({ ...s, static_configs: [{ targets: [new URL(ports[s.job_name]!).host] }] })),
    };
    await writeFile(path.join(dir, 'prometheus.yml'), stringify(config));
    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    prometheus = spawn(findProgram('prometheus')!, [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'tsdb')}`, `--web.listen-address=127.0.0.1:${port}`, '--enable-feature=exemplar-storage'], { stdio: 'ignore' });
    await waitForHttp(`${promUrl}/-/ready`, 30_000);

    // traffic mix: logins (and failures, and a lockout), REST reads and errors, conversations, bad frames
    const username = `live-${randomUUID()}`;
    const pool = new pg.Pool({ connectionString: inject('databaseUrl'), max: 1 });
    await createUser(pool, { username, email: `${username}@test.local`, password: 'live-password-123' }).finally(() => pool.end());
    const token = await passwordToken(auth.url, username, 'live-password-123');
    for (let i = 0; i < 6; i++) await fetch(`${auth.url}/oauth/token`, { method: 'POST', body: new URLSearchParams({ grant_type: 'password', client_id: 'codelab-flutter-app', username: `nobody-${username}`, password: 'wrong' }) });
    const headers = { authorization: `Bearer ${token}` };
    for (let i = 0; i < 3; i++) {
      await fetch(`${gateway.url}/api/v1/sessions`, { headers });
      await fetch(`${gateway.url}/api/v1/sessions/missing-${i}/history`, { headers });
      await fetch(`${gateway.url}/api/v1/sessions`);
    }
    const client = new FrameClient(`${gateway.url.replace('http', 'ws')}/api/v1/ws/live-${randomUUID()}`, headers);
    await client.open();
    for (let i = 0; i < 3; i++) {
      const from = client.frames.length;
      client.send({ type: 'user_message', content: `live traffic ${i}` });
      await client.until((f) => f.is_final === true, from);
    }
    // an agent's tool call that needs approval: approved, then its result (tools, approvals, switches)
    let from = client.frames.length;
    client.send({ type: 'user_message', content: 'implement it [[mock:tool_call write_file {"path":"a.ts","content":"x"}]]' });
    const [call] = (await client.until((f) => f.is_final === true, from)).slice(-1);
    from = client.frames.length;
    client.send({ type: 'hitl_decision', call_id: call!.call_id, decision: 'approve' });
    await client.until((f) => f.is_final === true, from);
    from = client.frames.length;
    client.send({ type: 'tool_result', call_id: call!.call_id, result: { success: true } });
    await client.until((f) => f.is_final === true, from);
    client.send('not json');
    await client.until((f) => f.type === 'error');
    client.close();
    // a few scrapes, then until every recording rule has been evaluated with data (bounded)
    await new Promise((r) => setTimeout(r, 4000));
    const records = [...new Set(ruleGroups().flatMap((g) => g.rules).filter((r): r is RecordingRule => 'record' in r).map((r) => r.record))];
    const deadline = Date.now() + 30_000;
    for (const name of records) while ((await query(name)).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
  }, 120_000);

  afterAll(async () => {
    prometheus?.kill('SIGTERM');
    for (const p of procs) await p.stop();
  });

  it('scrapes all four services', async () => {
    const up = (await query('up')) as { metric: { job: string }; value: [number, string] }[];
    expect(Object.fromEntries(up.map((s) => [s.metric.job, s.value[1]]))).toEqual({ gateway: '1', runtime: '1', 'llm-proxy': '1', auth: '1' });
  });

  it('evaluates every recording rule to at least one series', async () => {
    const records = [...new Set(ruleGroups().flatMap((g) => g.rules).filter((r): r is RecordingRule => 'record' in r).map((r) => r.record))];
    const health = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as { data: { groups: { rules: { name: string; health: string; lastError?: string }[] }[] } };
    const errors = new Map(health.data.groups.flatMap((g) => g.rules).filter((r) => r.lastError).map((r) => [r.name, r.lastError!]));
    const empty: string[] = [];
    const exprOf = new Map(ruleGroups().flatMap((g) => g.rules).filter((r): r is RecordingRule => 'record' in r).map((r) => [r.record, r.expr]));
    for (const name of records) {
      if ((await query(name)).length > 0) continue;
      const direct = await query(exprOf.get(name)!).then((r) => JSON.stringify(r).slice(0, 200), (e: Error) => e.message);
      empty.push(`${name}${errors.has(name) ? `: ${errors.get(name)}` : ''} (its expression now: ${direct})`);
    }
    expect(empty).toEqual([]);
  });

  it('finds in a scrape every metric an alert or a dashboard panel names', async () => {
    const res = (await (await fetch(`${promUrl}/api/v1/label/__name__/values`)).json()) as { data: string[] };
    const known = new Set(res.data);
    const recorded = new Set(ruleGroups().flatMap((g) => g.rules).filter((r): r is RecordingRule => 'record' in r).map((r) => r.record));
    const alerts = ruleGroups().flatMap((g) => g.rules).filter((r): r is AlertRule => 'alert' in r);
    const used = new Map<string, string>();
    for (const a of alerts) for (const m of metricNamesOf(a.expr)) used.set(m, `alert ${a.alert}`);
    for (const q of allPanelQueries()) for (const m of metricNamesOf(q.expr)) used.set(m, `panel ${q.dashboard}/${q.panel}`);
    const missing = [...used].filter(([m]) => !known.has(m) && !recorded.has(m)).map(([m, where]) => `${m} (${where})`);
    expect(missing).toEqual([]);
  });

  it('returns at least one series for every dashboard panel query', async () => {
    const queries = allPanelQueries();
    const empty: string[] = [];
    for (const q of queries) if ((await query(q.expr)).length === 0) empty.push(`${q.dashboard} / ${q.panel}: ${q.expr}`);
    expect(empty).toEqual([]);
  });
});
