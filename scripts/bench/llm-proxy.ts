/**
 * `npm run bench:llm-proxy`: what the llm-proxy adds to a stream in upstream mode. A mock llm-proxy
 * (0 ms time to first token, 0 ms between tokens) is the upstream; a second llm-proxy in `openai`
 * mode sits in front of it; each is its own process. At 1, 50 and 200 concurrent streams, batches
 * through the proxy and batches straight to the mock alternate in the same run, and the bench
 * reports time to first token (p50/p99, and what the proxy adds) and tokens/s of both.
 *
 *   BENCH_ROUNDS=20 BENCH_WORDS=100 BENCH_LEVELS=1,50,200 npm run bench:llm-proxy
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Agent, request } from 'undici';
import { TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';
import { startProcess, type RunningProcess } from '../../test/helpers/processes.ts';
import { pct } from './timing.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS || 20);
const WORDS = Number(process.env.BENCH_WORDS || 100);
const LEVELS = (process.env.BENCH_LEVELS || '1,50,200').split(',').map(Number);
const agent = new Agent({ connections: 1024, keepAliveTimeout: 30_000, pipelining: 1 });

interface Sample {
  ttftMs: number;
  tokens: number;
}

const f2 = (n: number): string => n.toFixed(2);

const body = JSON.stringify({ model: 'fake-llm', stream: true, messages: [{ role: 'user', content: `bench [[mock:words ${WORDS}]]` }] });

async function stream(url: string): Promise<Sample> {
  const started = performance.now();
  const res = await request(`${url}/v1/chat/completions`, {
    method: 'POST',
    dispatcher: agent,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${TEST_INTERNAL_KEY}` },
    body,
  });
  if (res.statusCode !== 200) throw new Error(`${url} answered ${res.statusCode}: ${await res.body.text()}`);
  let first = 0;
  let tokens = 0;
  let done = false;
  for await (const chunk of res.body) {
    const text = (chunk as Buffer).toString('latin1');
    let i = -1;
    while ((i = text.indexOf('"content":"', i + 1)) >= 0) {
      if (text[i + 11] === '"') continue; // the empty opener
      tokens++;
      if (!first) first = performance.now();
    }
    if (text.includes('[DONE]')) done = true;
  }
  if (!done) throw new Error('stream ended without [DONE]');
  return { ttftMs: first - started, tokens };
}

/** One batch of `n` concurrent streams: samples and the batch's tokens/s. */
async function batch(url: string, n: number): Promise<{ samples: Sample[]; tokens: number; ms: number }> {
  const t0 = performance.now();
  const samples = await Promise.all(Array.from({ length: n }, () => stream(url)));
  return { samples, tokens: samples.reduce((a, s) => a + s.tokens, 0), ms: performance.now() - t0 };
}

/** The proxy's own `llm_proxy_overhead_seconds` buckets (cumulative counts by upper bound). */
async function overheadBuckets(url: string): Promise<Map<number, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out = new Map<number, number>();
  for (const m of text.matchAll(/^llm_proxy_overhead_seconds_bucket\{le="([^"]+)"[^}]*\} (\S+)$/gm))
    out.set(m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2]));
  return out;
}
/** Upper bound (ms) of the bucket holding percentile p of the observations between two scrapes. */
function bucketPct(before: Map<number, number>, after: Map<number, number>, p: number): number {
  const les = [...after.keys()].sort((a, b) => a - b);
  const total = (after.get(Infinity) ?? 0) - (before.get(Infinity) ?? 0);
  for (const le of les) if ((after.get(le) ?? 0) - (before.get(le) ?? 0) >= (p / 100) * total) return le * 1000;
  return NaN;
}

const procs: RunningProcess[] = [];
try {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'codelab-bench-llmp-'));
  const common = { CODELAB_DATA_DIR: dataDir, LLM_PROXY__INTERNAL_API_KEY: TEST_INTERNAL_KEY, LLM_PROXY__LOG_LEVEL: 'warn' };
  const mock = await startProcess('llm-proxy', {
    ...common,
    LLM_PROXY__MOCK_TTFT_MS: '0',
    LLM_PROXY__MOCK_TOKEN_DELAY_MS: '0',
    LLM_PROXY__MAX_CONCURRENT_REQUESTS: '4096',
  });
  procs.push(mock);
  const proxy = await startProcess('llm-proxy', {
    ...common,
    LLM_PROXY__LLM_MODE: 'openai',
    LLM_PROXY__LITELLM_PROXY_URL: mock.url,
    LLM_PROXY__LITELLM_API_KEY: TEST_INTERNAL_KEY,
    LLM_PROXY__MAX_CONCURRENT_REQUESTS: '4096',
  });
  procs.push(proxy);
  console.log(
    `mock upstream ${mock.url}, proxy ${proxy.url}; ${WORDS} tokens per stream, ${ROUNDS} rounds per level (after 3 warm-up rounds)`,
  );
  console.log('streams | direct TTFT p50 / p99 ms | proxy TTFT p50 / p99 ms | added p50 / p99 ms | direct tok/s | proxy tok/s | ratio');
  for (const n of LEVELS) {
    for (let i = 0; i < 3; i++) {
      await batch(mock.url, n);
      await batch(proxy.url, n);
    }
    const before = await overheadBuckets(proxy.url);
    const direct = { ttft: [] as number[], tokens: 0, ms: 0 };
    const proxied = { ttft: [] as number[], tokens: 0, ms: 0 };
    for (let r = 0; r < ROUNDS; r++) {
      for (const [url, acc] of r % 2 === 0
        ? ([
            [mock.url, direct],
            [proxy.url, proxied],
          ] as const)
        : ([
            [proxy.url, proxied],
            [mock.url, direct],
          ] as const)) {
        const b = await batch(url, n);
        acc.ttft.push(...b.samples.map((s) => s.ttftMs));
        acc.tokens += b.tokens;
        acc.ms += b.ms;
      }
    }
    const dTps = direct.tokens / (direct.ms / 1000);
    const pTps = proxied.tokens / (proxied.ms / 1000);
    const [d50, d99, p50, p99] = [pct(direct.ttft, 50), pct(direct.ttft, 99), pct(proxied.ttft, 50), pct(proxied.ttft, 99)];
    console.log(
      `${String(n).padStart(7)} | ${f2(d50).padStart(8)} / ${f2(d99).padEnd(8)}     | ${f2(p50).padStart(8)} / ${f2(p99).padEnd(8)}    | ${f2(p50 - d50).padStart(7)} / ${f2(p99 - d99).padEnd(7)} | ${dTps.toFixed(0).padStart(12)} | ${pTps.toFixed(0).padStart(11)} | ${((pTps / dTps) * 100).toFixed(0)}%`,
    );
    const after = await overheadBuckets(proxy.url);
    console.log(
      `        | the proxy's own llm_proxy_overhead_seconds at this level: p50 <= ${bucketPct(before, after, 50)} ms, p99 <= ${bucketPct(before, after, 99)} ms`,
    );
  }
  console.log('goal: added TTFT p99 < 5 ms at 200 streams, proxy tokens/s >= 70% of direct');
  console.log(
    `(client, mock and proxy are three processes on ${(await import('node:os')).availableParallelism()} CPUs: through the proxy they share the same cores)`,
  );
} finally {
  for (const p of procs) await p.stop();
  await agent.close();
}
