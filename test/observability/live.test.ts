/**
 * The shipped rules against live traffic: the four services run as processes, a real Prometheus
 * scrapes them with the generated rules, a short traffic mix runs (with errors), and then every
 * recording rule and every dashboard panel query must return at least one series, and every metric
 * an alert or a panel names must exist in a scrape.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { missingProgram } from '@codelab/service-kit/testing';
import { createStackUser, FrameClient, passwordToken } from '../helpers/stack.ts';
import { REPO_ROOT, startPlatformProcesses, type PlatformProcesses, type RunningProcess } from '../helpers/processes.ts';
import { startPrometheus, type Prometheus } from '../helpers/prometheus.ts';
import type { AlertRule, RecordingRule, RuleGroup } from '../../alerts/src/rules.ts';
import { allPanelQueries, metricNamesOf } from '../../dashboards/src/lib.ts';

const GENERATED = path.join(REPO_ROOT, 'alerts', 'generated');
const ruleGroups = (): RuleGroup[] =>
  readdirSync(GENERATED)
    .filter((f) => f.endsWith('.rules.yml'))
    .flatMap((f) => (parse(readFileSync(path.join(GENERATED, f), 'utf8')) as { groups: RuleGroup[] }).groups);

describe.skipIf(missingProgram('prometheus', 'prometheus'))('rules and dashboards against a real Prometheus and live traffic', () => {
  let platform: PlatformProcesses;
  let prometheus: Prometheus;
  let gateway: RunningProcess;
  let auth: RunningProcess;

  const query = (expr: string) => prometheus.query(expr);

  beforeAll(async () => {
    platform = await startPlatformProcesses({ databaseUrl: inject('databaseUrl') });
    ({ gateway, auth } = platform);
    const dir = platform.dataDir;

    // the shipped rules, evaluated every second instead of every 30 s
    for (const f of readdirSync(GENERATED).filter((x) => x.endsWith('.rules.yml'))) {
      const doc = parse(readFileSync(path.join(GENERATED, f), 'utf8')) as { groups: RuleGroup[] };
      for (const g of doc.groups) g.interval = '1s';
      await writeFile(path.join(dir, f), stringify(doc));
    }
    prometheus = await startPrometheus({ dir, targets: platform.urls, ruleFiles: [path.join(dir, '*.rules.yml')] });

    // traffic mix: logins (and failures, and a lockout), REST reads and errors, conversations, bad frames
    const { username, password } = await createStackUser(inject('databaseUrl'), 'live');
    const token = await passwordToken(auth.url, username, password);
    for (let i = 0; i < 6; i++)
      await fetch(`${auth.url}/oauth/token`, {
        method: 'POST',
        body: new URLSearchParams({
          grant_type: 'password',
          client_id: 'codelab-flutter-app',
          username: `nobody-${username}`,
          password: 'wrong',
        }),
      });
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
    const records = [
      ...new Set(
        ruleGroups()
          .flatMap((g) => g.rules)
          .filter((r): r is RecordingRule => 'record' in r)
          .map((r) => r.record),
      ),
    ];
    const deadline = Date.now() + 30_000;
    for (const name of records)
      while ((await query(name)).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
  }, 120_000);

  afterAll(async () => {
    await prometheus?.close();
    await platform?.stop();
  });

  it('scrapes all four services', async () => {
    const up = await query('up');
    expect(Object.fromEntries(up.map((s) => [s.metric.job, s.value]))).toEqual({ gateway: 1, runtime: 1, 'llm-proxy': 1, auth: 1 });
  });

  it('evaluates every recording rule to at least one series', async () => {
    const records = [
      ...new Set(
        ruleGroups()
          .flatMap((g) => g.rules)
          .filter((r): r is RecordingRule => 'record' in r)
          .map((r) => r.record),
      ),
    ];
    const health = (await (await fetch(`${prometheus.url}/api/v1/rules`)).json()) as {
      data: { groups: { rules: { name: string; health: string; lastError?: string }[] }[] };
    };
    const errors = new Map(
      health.data.groups
        .flatMap((g) => g.rules)
        .filter((r) => r.lastError)
        .map((r) => [r.name, r.lastError!]),
    );
    const empty: string[] = [];
    const exprOf = new Map(
      ruleGroups()
        .flatMap((g) => g.rules)
        .filter((r): r is RecordingRule => 'record' in r)
        .map((r) => [r.record, r.expr]),
    );
    for (const name of records) {
      if ((await query(name)).length > 0) continue;
      const direct = await query(exprOf.get(name)!).then(
        (r) => JSON.stringify(r).slice(0, 200),
        (e: Error) => e.message,
      );
      empty.push(`${name}${errors.has(name) ? `: ${errors.get(name)}` : ''} (its expression now: ${direct})`);
    }
    expect(empty).toEqual([]);
  });

  it('finds in a scrape every metric an alert or a dashboard panel names', async () => {
    const res = (await (await fetch(`${prometheus.url}/api/v1/label/__name__/values`)).json()) as { data: string[] };
    const known = new Set(res.data);
    const recorded = new Set(
      ruleGroups()
        .flatMap((g) => g.rules)
        .filter((r): r is RecordingRule => 'record' in r)
        .map((r) => r.record),
    );
    const alerts = ruleGroups()
      .flatMap((g) => g.rules)
      .filter((r): r is AlertRule => 'alert' in r);
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
