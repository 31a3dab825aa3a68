/**
 * The k6 scripts (loadtests/k6), checked without a k6 binary: they type-check against @types/k6
 * alone (k6 is not Node); every script takes its options from buildOptions(), which is the profile
 * of loadtests/lib/profiles.ts (in whole iterations per time unit, as k6 needs) plus the generated
 * SLO thresholds; every threshold is on a
 * metric its script defines (with a type the threshold's aggregation fits) or on a k6 built-in; the
 * frame accounting of the chat journey is right; and the workflow runs scripts that exist.
 */
/// <reference types="k6" />
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CHAT_TURNS, PROFILES, SCENARIOS, profile, seconds, type ScenarioName } from '../lib/profiles.ts';
import { SeqTracker, TurnRecorder, parseFrame } from '../k6/lib/frames.ts';
import { nextTurnFrame, userMessage } from '../lib/conversation.ts';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const K6_DIR = path.join(ROOT, 'loadtests', 'k6');
const THRESHOLDS = JSON.parse(readFileSync(path.join(ROOT, 'loadtests', 'generated', 'thresholds.json'), 'utf8')) as Record<
  ScenarioName,
  Record<string, unknown[]>
>;

// The k6 init-context globals the option helpers use, as k6 provides them.
const k6Globals = globalThis as unknown as { __ENV: Record<string, string>; open: (file: string) => string };
k6Globals.__ENV = {};
k6Globals.open = (file) => readFileSync(file.startsWith('file:') ? fileURLToPath(file) : file, 'utf8');
const { EXEC, SUMMARY_TREND_STATS, buildOptions, k6Arrivals, profileName, profileSeconds } = await import('../k6/lib/options.ts');
const { summaryText } = await import('../k6/lib/summary.ts');

const script = (scenario: string): string => path.join(K6_DIR, `${scenario}.ts`);
const source = (file: string): string => readFileSync(file, 'utf8');
const { summaryFor } = await import('../k6/lib/summary.ts');

beforeEach(() => {
  k6Globals.__ENV = {};
});

/** The script and every local module it imports, transitively. */
function moduleGraph(file: string, seen = new Set<string>()): string[] {
  if (seen.has(file)) return [];
  seen.add(file);
  for (const [, spec] of source(file).matchAll(/from '(\.{1,2}\/[^']+\.ts)'/g)) moduleGraph(path.resolve(path.dirname(file), spec!), seen);
  return [...seen];
}

type MetricType = 'counter' | 'gauge' | 'rate' | 'trend';
const CONSTRUCTORS: Record<string, MetricType> = { Counter: 'counter', Gauge: 'gauge', Rate: 'rate', Trend: 'trend' };

/** k6's built-in metrics (grafana.com/docs/k6/latest/using-k6/metrics/reference). */
const BUILTIN: Record<string, MetricType> = {
  checks: 'rate',
  data_received: 'counter',
  data_sent: 'counter',
  dropped_iterations: 'counter',
  group_duration: 'trend',
  iteration_duration: 'trend',
  iterations: 'counter',
  vus: 'gauge',
  vus_max: 'gauge',
  http_reqs: 'counter',
  http_req_blocked: 'trend',
  http_req_connecting: 'trend',
  http_req_duration: 'trend',
  http_req_failed: 'rate',
  http_req_receiving: 'trend',
  http_req_sending: 'trend',
  http_req_tls_handshaking: 'trend',
  http_req_waiting: 'trend',
  ws_connecting: 'trend',
  ws_msgs_received: 'counter',
  ws_msgs_sent: 'counter',
  ws_ping: 'trend',
  ws_session_duration: 'trend',
  ws_sessions: 'counter',
};

/** The metrics a script's module graph declares with `new Trend('…')` and co. */
function definedMetrics(file: string): Map<string, MetricType> {
  const out = new Map<string, MetricType>();
  for (const module of moduleGraph(file)) {
    for (const [, ctor, name] of source(module).matchAll(/new (Counter|Gauge|Rate|Trend)\(\s*'([^']+)'/g))
      out.set(name!, CONSTRUCTORS[ctor!]!);
  }
  return out;
}

/** The aggregation a threshold expression uses: `p(95)<2500` → p, `count==0` → count. */
function aggregation(expr: string): string {
  const m = /^\s*(avg|min|max|med|p\(\d+(?:\.\d+)?\)|rate|count|value)\s*(?:<=|>=|===|==|!=|<|>)\s*-?\d+(?:\.\d+)?\s*$/.exec(expr);
  if (!m) throw new Error(`not a k6 threshold expression: ${expr}`);
  return m[1]!.startsWith('p(') ? 'p' : m[1]!;
}
const AGGREGATIONS: Record<MetricType, string[]> = {
  trend: ['avg', 'min', 'max', 'med', 'p'],
  rate: ['rate'],
  counter: ['count', 'rate'],
  gauge: ['value'],
};

describe('the k6 scripts', () => {
  it('type-check against @types/k6 alone, without Node types (k6 is not Node)', () => {
    const tsc = path.join(ROOT, 'node_modules', '.bin', 'tsc');
    const check = spawnSync(tsc, ['-p', 'loadtests/tsconfig.json', '--noEmit'], { cwd: ROOT, encoding: 'utf8' });
    expect(check.stdout + check.stderr).toBe('');
    expect(check.status).toBe(0);
    const files = spawnSync(tsc, ['-p', 'loadtests/tsconfig.json', '--listFilesOnly'], { cwd: ROOT, encoding: 'utf8' }).stdout.split('\n');
    expect(files.filter((f) => f.includes('/@types/node/'))).toEqual([]);
    for (const scenario of SCENARIOS) expect(files).toContain(script(scenario));
    expect(files).toContain(path.join(ROOT, 'loadtests', 'lib', 'profiles.ts'));
  });

  it.each(SCENARIOS)('%s.ts follows the quickpizza section order and takes its options from buildOptions()', (scenario) => {
    const src = source(script(scenario));
    const at = (re: RegExp): number => {
      const i = src.search(re);
      expect(i, String(re)).toBeGreaterThanOrEqual(0);
      return i;
    };
    const order = [
      at(/^import /m),
      at(/__ENV\.\w+ \|\| 'http:\/\/127\.0\.0\.1:800[0-3]'/),
      at(new RegExp(`^export const options = buildOptions\\('${scenario}'\\);$`, 'm')),
      at(/^const \w+ = new (Counter|Gauge|Rate|Trend)\(/m),
      at(/^export function setup\(/m),
      at(new RegExp(`^export (async )?function ${EXEC[scenario]}\\(`, 'm')),
      at(new RegExp(`^export const handleSummary = summaryFor\\('${scenario}'\\);$`, 'm')),
    ];
    expect(order).toEqual([...order].sort((a, b) => a - b));
    // setup() checks /ready before any load
    expect(src.slice(order[4], order[5])).toMatch(/assertReady\(/);
    // no load shape or threshold typed again
    expect(src).not.toMatch(/stages|executor|thresholds\s*:|p\(9\d\)\s*</);
  });

  it('every profile of every scenario is profile() plus the generated thresholds, in whole iterations per time unit', () => {
    const wholeRates = (p: { startRate: number; stages: { target: number }[] }): boolean =>
      [p.startRate, ...p.stages.map((s) => s.target)].every(Number.isInteger);
    for (const scenario of SCENARIOS) {
      for (const name of PROFILES) {
        const expected = profile(scenario, name);
        const options = buildOptions(scenario, name);
        expect(Object.keys(options).sort()).toEqual(['scenarios', 'summaryTrendStats', 'thresholds']);
        expect(options.thresholds).toEqual(THRESHOLDS[scenario]);
        expect(options.summaryTrendStats).toEqual(SUMMARY_TREND_STATS);
        expect(Object.keys(options.scenarios)).toEqual([name]);
        const got = options.scenarios[name]!;
        // k6 refuses fractional rates (int64 in its config)
        expect(wholeRates(got), `${scenario}/${name}`).toBe(true);
        if (wholeRates(expected)) {
          expect(got).toEqual({ ...expected, exec: EXEC[scenario] });
        } else {
          // the same arrivals per second, restated per a longer time unit
          const unit = seconds(got.timeUnit);
          expect(got).toEqual({
            ...expected,
            exec: EXEC[scenario],
            timeUnit: got.timeUnit,
            startRate: expect.closeTo(expected.startRate * unit, 6),
            stages: expected.stages.map((s) => ({ duration: s.duration, target: expect.closeTo(s.target * unit, 6) })),
          });
        }
      }
    }
  });

  it('restates fractional rates per 10 s (3.2/s → 32 per 10 s) and leaves whole ones alone', () => {
    const base = { executor: 'ramping-arrival-rate' as const, timeUnit: '1s' as const, preAllocatedVUs: 2, maxVUs: 4 };
    expect(
      k6Arrivals({
        ...base,
        startRate: 0,
        stages: [
          { duration: '2m', target: 3.2 },
          { duration: '1h', target: 0.8 },
        ],
      }),
    ).toEqual({
      ...base,
      timeUnit: '10s',
      startRate: 0,
      stages: [
        { duration: '2m', target: 32 },
        { duration: '1h', target: 8 },
      ],
    });
    expect(k6Arrivals({ ...base, startRate: 0.25, stages: [{ duration: '10s', target: 0.25 }] })).toMatchObject({
      timeUnit: '100s',
      startRate: 25,
      stages: [{ target: 25 }],
    });
    const wholeProfile = { ...base, startRate: 1, stages: [{ duration: '10s', target: 4 }] };
    expect(k6Arrivals(wholeProfile)).toBe(wholeProfile);
    // the shared profiles that need it today: soak and spike of auth and chat
    expect(buildOptions('chat', 'soak').scenarios.soak).toMatchObject({
      timeUnit: '10s',
      stages: [{ target: 32 }, { target: 32 }, { target: 0 }],
    });
  });

  it('takes the profile from PROFILE (smoke when unset) and refuses an unknown one', () => {
    expect(buildOptions('chat').scenarios).toHaveProperty('smoke');
    k6Globals.__ENV = { PROFILE: 'soak' };
    expect(profileName()).toBe('soak');
    expect(buildOptions('chat').scenarios.soak).toMatchObject({ exec: 'haveConversation', maxVUs: profile('chat', 'soak').maxVUs });
    k6Globals.__ENV = { PROFILE: 'huge' };
    expect(() => buildOptions('api')).toThrow(/PROFILE=huge is not a profile: expected one of smoke, ci, load, stress, soak, spike/);
    expect(profileSeconds('chat', 'ci')).toBe(85);
    expect(profileSeconds('api', 'soak')).toBe(3840);
  });

  it.each(SCENARIOS)(
    'every threshold of %s is on a metric its script defines, or a k6 built-in, of a type its aggregation fits',
    (scenario) => {
      const defined = definedMetrics(script(scenario));
      for (const [metric, list] of Object.entries(THRESHOLDS[scenario])) {
        const type = defined.get(metric) ?? BUILTIN[metric];
        expect(type, `${scenario}: ${metric}`).toBeDefined();
        for (const t of list) {
          const expr = typeof t === 'string' ? t : (t as { threshold: string }).threshold;
          expect(AGGREGATIONS[type!], `${scenario}: ${metric} ${expr}`).toContain(aggregation(expr));
        }
      }
    },
  );

  it.each(SCENARIOS)('the custom metrics of %s are prefixed with the journey (a built-in is only reused with its own type)', (scenario) => {
    for (const [name, type] of definedMetrics(script(scenario))) {
      if (!name.startsWith(`${scenario}_`)) expect(BUILTIN[name], `${scenario}: ${name}`).toBe(type);
    }
  });

  it('the llm script reports each stream on http_req_failed itself (xk6-sse records no http_req_failed)', () => {
    expect(THRESHOLDS.llm).toHaveProperty('http_req_failed');
    expect(source(script('llm'))).toMatch(/new Rate\('http_req_failed'\)/);
    expect(source(script('llm'))).toMatch(/^import sse from 'k6\/x\/sse';$/m);
  });

  it('the chat script scripts the mock with valid directives: short answers, a read_file call, a call that needs approval', () => {
    const src = source(script('chat'));
    // the messages come from the script shared with the Node driver
    expect(src).toMatch(/import \{ MAX_TURNS_PER_MESSAGE, nextTurnFrame, userMessage \} from '\.\.\/lib\/conversation\.ts'/);
    const messages = Array.from({ length: CHAT_TURNS }, (_, i) => userMessage(i)).join('\n');
    const calls = [...messages.matchAll(/\[\[mock:tool_call (\w+) (\{.*?\})\]\]/g)].map(([, tool, args]) => ({
      tool,
      args: JSON.parse(args!) as unknown,
    }));
    expect(calls).toEqual([
      { tool: 'read_file', args: { path: 'src/list.ts' } },
      { tool: 'write_file', args: { path: 'src/list.ts', content: 'export class List {}' } },
    ]);
    expect(messages).toMatch(/\[\[mock:words \d+\]\]/);
    expect(CHAT_TURNS).toBeGreaterThanOrEqual(3); // the messages with tool calls are the 2nd and 3rd
    // a call that needs approval is approved first, then its result goes back; an answer ends the message
    expect(nextTurnFrame({ type: 'tool_call', call_id: 'c1', tool_name: 'write_file', requires_approval: true })).toEqual({
      type: 'hitl_decision',
      call_id: 'c1',
      decision: 'approve',
    });
    expect(nextTurnFrame({ type: 'tool_call', call_id: 'c1', tool_name: 'read_file', requires_approval: false })).toMatchObject({
      type: 'tool_result',
      call_id: 'c1',
      result: { content: expect.any(String) },
    });
    expect(nextTurnFrame({ type: 'assistant_message' })).toBe('answered');
    expect(nextTurnFrame({ type: 'error' })).toBeUndefined();
    expect(src).toMatch(/\?access_token=\$\{encodeURIComponent\(data\.token\)\}/);
  });

  it('writes its summary as JSON under SUMMARY_DIR (loadtests/results by default) and prints the thresholds', () => {
    const data = {
      metrics: {
        chat_time_to_first_token: {
          type: 'trend' as const,
          contains: 'time' as const,
          values: { 'p(95)': 41.5 },
          thresholds: { 'p(95)<2500': { ok: true } },
        },
        chat_turns_failed: { type: 'rate' as const, values: { rate: 0.25 }, thresholds: { 'rate<0.01': { ok: false } } },
        iterations: { type: 'counter' as const, values: { count: 12 } },
      },
    };
    const out = summaryFor('chat')(data);
    expect(Object.keys(out).sort()).toEqual(['loadtests/results/chat-smoke.json', 'stdout']);
    expect(JSON.parse(out['loadtests/results/chat-smoke.json']!)).toEqual(data);
    expect(out.stdout).toBe(summaryText('chat', 'smoke', data));
    expect(out.stdout).toContain('chat_time_to_first_token: p(95)=41.5ms\n    ok   p(95)<2500');
    expect(out.stdout).toContain('chat_turns_failed: rate=25.00%\n    FAIL rate<0.01');
    expect(out.stdout).toContain('1 threshold(s) failed');
    expect(out.stdout).not.toContain('iterations');
    k6Globals.__ENV = { SUMMARY_DIR: '/tmp/k6', PROFILE: 'ci' };
    expect(Object.keys(summaryFor('api')(data))).toContain('/tmp/k6/api-ci.json');
    expect(existsSync(path.join(ROOT, 'loadtests', 'results', '.gitignore'))).toBe(true);
  });
});

describe('frame accounting of a conversation', () => {
  it('counts a jump in seq as missed frames and a seq not above the last as out of order', () => {
    const seqs = new SeqTracker();
    expect(seqs.observe(1)).toEqual({ missed: 0, outOfOrder: false });
    expect(seqs.observe(2)).toEqual({ missed: 0, outOfOrder: false });
    expect(seqs.observe(5)).toEqual({ missed: 2, outOfOrder: false });
    expect(seqs.observe(4)).toEqual({ missed: 0, outOfOrder: true });
    expect(seqs.observe(5)).toEqual({ missed: 0, outOfOrder: true });
    expect(seqs.observe(undefined)).toEqual({ missed: 0, outOfOrder: false }); // pong, gateway errors
    expect(seqs.observe(6)).toEqual({ missed: 0, outOfOrder: false });
    // a fresh session starts at 1: a first frame numbered 3 means two were missed
    expect(new SeqTracker().observe(3)).toEqual({ missed: 2, outOfOrder: false });
  });

  it('times a turn: first token, gaps between tokens, duration; ends on the final frame', () => {
    const turn = new TurnRecorder(1000);
    expect(turn.add({ type: 'agent_switched', seq: 1 }, 1010)).toBe(false);
    expect(turn.add({ type: 'assistant_message', token: 'w0', is_final: false, seq: 2 }, 1040)).toBe(false);
    expect(turn.add({ type: 'assistant_message', token: ' w1', is_final: false, seq: 3 }, 1055)).toBe(false);
    expect(turn.add({ type: 'assistant_message', token: ' w2', is_final: false, seq: 4 }, 1075)).toBe(false);
    expect(turn.add({ type: 'assistant_message', content: 'w0 w1 w2', is_final: true, seq: 5 }, 1080)).toBe(true);
    const result = turn.finish(1081);
    expect(result).toMatchObject({ timeToFirstToken: 40, interTokenGaps: [15, 20], duration: 81, failed: false, reason: undefined });
    expect(result.final).toMatchObject({ type: 'assistant_message', is_final: true });
  });

  it('a tool call ends a turn without a token; an error frame, a timeout or a lost connection fail it', () => {
    const call = new TurnRecorder(0);
    expect(
      call.add({ type: 'tool_call', call_id: 'c1', tool_name: 'read_file', requires_approval: false, is_final: true, seq: 7 }, 30),
    ).toBe(true);
    expect(call.finish(30)).toMatchObject({ timeToFirstToken: undefined, failed: false, final: { type: 'tool_call' } });

    const error = new TurnRecorder(0);
    error.add({ type: 'error', code: 'RT_ERR_LLM_UNAVAILABLE', is_final: true }, 5);
    expect(error.finish(5)).toMatchObject({ failed: true, reason: 'RT_ERR_LLM_UNAVAILABLE' });

    const slow = new TurnRecorder(0);
    slow.add({ type: 'assistant_message', token: 'w0', is_final: false, seq: 1 }, 10);
    expect(slow.finish(30_000, 'timeout')).toMatchObject({
      failed: true,
      reason: 'timeout',
      final: undefined,
      timeToFirstToken: 10,
      duration: 30_000,
    });
    expect(new TurnRecorder(0).finish(1, 'closed')).toMatchObject({ failed: true, reason: 'closed' });
  });

  it('parses JSON frames and ignores anything else', () => {
    expect(parseFrame('{"type":"pong","timestamp":1}')).toEqual({ type: 'pong', timestamp: 1 });
    expect(parseFrame('not json')).toBeUndefined();
    expect(parseFrame('[1]')).toBeUndefined();
    expect(parseFrame(new ArrayBuffer(2))).toBeUndefined();
  });
});

describe('the load-tests workflow', () => {
  const text = source(path.join(ROOT, '.github', 'workflows', 'load-tests.yml'));
  interface Step {
    uses?: string;
    run?: string;
    with?: Record<string, string | number | boolean>;
    env?: Record<string, string>;
    if?: string;
  }
  const wf = parse(text) as {
    on: Record<string, { inputs?: Record<string, { options?: string[]; default?: string }> } | null>;
    env: Record<string, string>;
    jobs: Record<string, { steps: Step[] }>;
  };
  const steps = (job: string): Step[] => wf.jobs[job]!.steps;
  const runs = (job: string): string =>
    steps(job)
      .map((s) => s.run ?? '')
      .join('\n');

  it('runs on pull requests and by hand with a profile (ci by default)', () => {
    expect(Object.keys(wf.on).sort()).toEqual(['pull_request', 'workflow_dispatch']);
    const profileInput = wf.on.workflow_dispatch!.inputs!.profile!;
    expect(profileInput.options).toEqual([...PROFILES]);
    expect(profileInput.default).toBe('ci');
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a GitHub Actions expression, as the workflow spells it
    expect(wf.env.PROFILE).toBe("${{ inputs.profile || 'ci' }}");
  });

  it('starts the platform with npm ci && npm start on the Node of .nvmrc (26), waits for /ready and reads the admin password', () => {
    for (const job of ['k6', 'k6-llm']) {
      expect(steps(job).find((s) => s.uses?.startsWith('actions/setup-node@'))?.with?.['node-version-file']).toBe('.nvmrc');
      expect(runs(job)).toMatch(/npm ci/);
      expect(runs(job)).toMatch(/nohup npm start > platform\.log 2>&1 &/);
      expect(runs(job)).toMatch(/curl -fsS http:\/\/127\.0\.0\.1:800[02]\/ready/);
    }
    expect(source(path.join(ROOT, '.nvmrc')).trim()).toBe('26');
    expect(runs('k6')).toMatch(/cat data\/auth\/admin-password/);
  });

  it('runs api.ts and chat.ts with grafana/setup-k6-action and grafana/run-k6-action', () => {
    const uses = steps('k6').map((s) => s.uses);
    expect(uses).toContain('grafana/setup-k6-action@v1');
    const run = steps('k6').find((s) => s.uses === 'grafana/run-k6-action@v1');
    expect(String(run?.with?.path).trim().split('\n')).toEqual(['loadtests/k6/api.ts', 'loadtests/k6/chat.ts']);
    expect(uses.indexOf('grafana/setup-k6-action@v1')).toBeLessThan(uses.indexOf('grafana/run-k6-action@v1'));
  });

  it('runs llm.ts on a k6 built with xk6-sse, in its own job', () => {
    expect(runs('k6-llm')).toMatch(/go install go\.k6\.io\/xk6\/cmd\/xk6@latest/);
    const build = steps('k6-llm').find((s) => s.run?.includes('xk6" build'));
    expect(build?.env?.XK6_SSE).toMatch(/^github\.com\/phymbert\/xk6-sse@v\d/);
    expect(runs('k6-llm')).toMatch(/\.\/bin\/k6 run loadtests\/k6\/llm\.ts/);
    expect(runs('k6-llm')).toMatch(/LLM_PROXY_KEY=/);
  });

  it('names only scripts that exist, and keeps the JSON summaries as artifacts', () => {
    const named = [...text.matchAll(/loadtests\/k6\/[\w/-]+\.ts/g)].map(([f]) => f);
    expect(named.length).toBeGreaterThanOrEqual(3);
    for (const file of named) expect(existsSync(path.join(ROOT, file)), file).toBe(true);
    expect(wf.env.SUMMARY_DIR).toBe('loadtests/results');
    for (const job of ['k6', 'k6-llm']) {
      const upload = steps(job).find((s) => s.uses?.startsWith('actions/upload-artifact@'));
      expect(upload?.if).toBe('always()');
      expect(String(upload?.with?.path)).toContain(`${wf.env.SUMMARY_DIR}/*.json`);
    }
  });
});
