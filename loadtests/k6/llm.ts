/**
 * Streamed chat completions straight at the llm-proxy, as the runtime asks for them: time to the
 * first content token, output tokens per second, tokens received. The mock's `[[mock:words N]]`
 * directive makes every answer N tokens long.
 *
 * k6 core has no Server-Sent Events: this script needs a k6 built with the xk6-sse extension
 * (`xk6 build --with github.com/phymbert/xk6-sse`, see loadtests/README.md).
 * `./k6 run -e LLM_PROXY_KEY=<internal key> [-e PROFILE=ci] loadtests/k6/llm.ts`
 */
// imports
import { check } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';
import sse from 'k6/x/sse';
import { buildOptions } from './lib/options.ts';
import { assertReady } from './lib/ready.ts';
import { summaryFor } from './lib/summary.ts';

// where the llm-proxy listens, and how to call it
const LLM_PROXY_URL = __ENV.LLM_PROXY_URL || 'http://127.0.0.1:8002';
const LLM_PROXY_KEY = __ENV.LLM_PROXY_KEY || '';
const MODEL = __ENV.LLM_MODEL || 'fake-llm';
/** Output tokens asked of the mock per completion. */
const ANSWER_TOKENS = Number(__ENV.LLM_ANSWER_TOKENS || '30');

// load shape and thresholds (loadtests/lib/profiles.ts, loadtests/generated/thresholds.json)
export const options = buildOptions('llm');

// custom metrics (prefixed with the journey)
/** Request sent → first chunk with content. */
const timeToFirstToken = new Trend('llm_time_to_first_token', true);
/** Output tokens per second after the first one. */
const tokensPerSecond = new Trend('llm_tokens_per_second');
/** Output tokens received (the usage chunk's count). */
const tokens = new Counter('llm_tokens');
/**
 * xk6-sse records http_reqs and http_req_duration for a stream but not http_req_failed, which the
 * LLM availability threshold is on: each stream's outcome is added to that built-in metric here
 * (k6 hands back the built-in Rate for its name). A stream failed when its status is not 200,
 * it carried an error event, or it ended without `[DONE]`.
 */
const requestsFailed = new Rate('http_req_failed');

// setup: the llm-proxy is up and takes the key
export function setup(): void {
  if (!LLM_PROXY_KEY)
    throw new Error(
      'LLM_PROXY_KEY is not set: run with -e LLM_PROXY_KEY=<the services internal key> (npm start generates one unless LLM_PROXY__INTERNAL_API_KEY is set)',
    );
  assertReady('llm-proxy', LLM_PROXY_URL);
}

// what the runtime does
interface Chunk {
  choices?: { delta?: { content?: string | null } }[];
  usage?: { completion_tokens?: number };
  error?: { code?: string; message?: string };
}

export function streamCompletion(): void {
  const body = JSON.stringify({
    model: MODEL,
    stream: true,
    stream_options: { include_usage: true },
    messages: [{ role: 'user', content: `Summarize the change in one paragraph [[mock:words ${ANSWER_TOKENS}]]` }],
  });
  const started = Date.now();
  let firstTokenAt: number | undefined;
  let lastTokenAt: number | undefined;
  let contentChunks = 0;
  let usageTokens: number | undefined;
  let streamError: string | undefined;
  let done = false;

  const res = sse.open(
    `${LLM_PROXY_URL}/v1/chat/completions`,
    {
      method: 'POST',
      headers: { Authorization: `Bearer ${LLM_PROXY_KEY}`, 'Content-Type': 'application/json' },
      body,
      tags: { name: 'POST /v1/chat/completions (stream)' },
    },
    (client) => {
      client.on('event', (event) => {
        const at = Date.now();
        if (event.data === '[DONE]') {
          done = true;
          client.close();
          return;
        }
        if (event.data === '') return;
        let chunk: Chunk;
        try {
          chunk = JSON.parse(event.data) as Chunk;
        } catch {
          streamError = 'invalid_chunk';
          return;
        }
        if (chunk.error) streamError = chunk.error.code || 'error';
        if (chunk.usage?.completion_tokens !== undefined) usageTokens = chunk.usage.completion_tokens;
        const content = chunk.choices?.[0]?.delta?.content;
        if (typeof content === 'string' && content !== '') {
          contentChunks += 1;
          if (firstTokenAt === undefined) firstTokenAt = at;
          lastTokenAt = at;
        }
      });
      client.on('error', (e) => {
        if (streamError === undefined) streamError = e.error();
      });
    },
  );

  const ok = res.status === 200 && done && streamError === undefined;
  requestsFailed.add(!ok, { name: 'POST /v1/chat/completions (stream)' });
  check(res, {
    'the completion stream answers 200': (r) => r.status === 200,
    'the stream ends with [DONE] and no error event': () => done && streamError === undefined,
    'the answer has the tokens asked for': () => (usageTokens ?? contentChunks) === ANSWER_TOKENS,
  });
  if (firstTokenAt !== undefined) timeToFirstToken.add(firstTokenAt - started);
  const received = usageTokens ?? contentChunks;
  tokens.add(received);
  if (firstTokenAt !== undefined && lastTokenAt !== undefined && lastTokenAt > firstTokenAt && received > 1) {
    tokensPerSecond.add((received - 1) / ((lastTokenAt - firstTokenAt) / 1000));
  }
}

// end-of-test summary
export const handleSummary = summaryFor('llm');
