/**
 * llm: one streamed chat completion per iteration, straight at the llm-proxy
 * (`POST /v1/chat/completions`, `stream: true`, the internal key as `Authorization: Bearer`), its
 * server-sent events read from undici's body as they arrive.
 * - `llm_time_to_first_token`: request sent → first content delta;
 * - `llm_tokens_per_second`: tokens after the first ÷ seconds from the first content delta to the last;
 * - `llm_tokens`: output tokens received (the usage chunk's count, else the content deltas);
 * - `http_req_duration` runs to the end of the stream; `http_req_failed` counts a bad status and a
 *   stream that broke (an error event, or no `[DONE]`).
 */
import { request } from 'undici';
import { describeError } from '../http.ts';
import { SetupError, type Scenario } from './types.ts';

/** Output tokens asked of the mock per completion (the k6 script's default). */
const LLM_WORDS = 30;
const LLM_MODEL = 'fake-llm';

interface Chunk {
  choices?: { delta?: { content?: string | null } }[];
  usage?: { completion_tokens?: number } | null;
  error?: { code?: string; message?: string };
}

export const llm: Scenario<{ key: string; url: string }> = {
  name: 'llm',
  description: `a streamed completion of ${LLM_WORDS} tokens from the llm-proxy (POST /v1/chat/completions)`,
  needs: ['llm'],
  metrics: [
    { name: 'llm_time_to_first_token', type: 'trend', unit: 'ms', description: 'request sent → first content delta' },
    { name: 'llm_tokens_per_second', type: 'trend', description: 'output tokens per second after the first' },
    { name: 'llm_tokens', type: 'counter', description: 'output tokens received' },
  ],
  latencyMetric: 'http_req_duration',
  errorMetric: 'http_req_failed',
  ttftMetric: 'llm_time_to_first_token',
  async setup(env) {
    const key = env.llmKey;
    if (!key) {
      throw new SetupError(
        'no internal key for the llm-proxy: pass --llm-key or set LOAD_LLM_KEY. `npm start` keeps the key the four services share in ' +
          '$CODELAB_DATA_DIR/internal-api-key (data/internal-api-key), which is read when neither is given: is the platform started from this checkout?',
      );
    }
    const models = await env.http.raw({
      name: 'setup models',
      url: `${env.targets.llm}/v1/models`,
      headers: { authorization: `Bearer ${key}` },
      expect: [200],
    });
    if (models.status === 401)
      throw new SetupError(
        `the llm-proxy at ${env.targets.llm} refused the internal key (401): pass the key the platform was started with`,
      );
    if (!models.ok)
      throw new SetupError(`GET ${env.targets.llm}/v1/models failed: ${models.error ?? `${models.status} ${models.text.slice(0, 200)}`}`);
    const ids = (models.json<{ data?: { id?: string }[] }>()?.data ?? []).map((m) => m.id);
    if (!ids.includes(LLM_MODEL))
      throw new SetupError(`the llm-proxy does not serve ${LLM_MODEL} (it serves ${ids.join(', ') || 'nothing'})`);
    return { key, url: `${env.targets.llm}/v1/chat/completions` };
  },
  async iteration(state, ctx, env) {
    const { http, metrics } = env;
    const spec = { name: 'POST /v1/chat/completions (stream)', method: 'POST' as const, expect: [200] };
    const sent = performance.now();
    let status = 0;
    let first: number | undefined;
    let last: number | undefined;
    let tokens = 0;
    let usageTokens: number | undefined;
    let done = false;
    let streamError: string | undefined;
    try {
      const res = await request(state.url, {
        dispatcher: http.agent,
        method: 'POST',
        headers: { authorization: `Bearer ${state.key}`, 'content-type': 'application/json', accept: 'text/event-stream' },
        body: JSON.stringify({
          model: LLM_MODEL,
          stream: true,
          stream_options: { include_usage: true },
          messages: [{ role: 'user', content: `Summarize the change in one paragraph [[mock:words ${LLM_WORDS}]]` }],
        }),
        signal: ctx.signal,
      });
      status = res.statusCode;
      if (status !== 200) {
        streamError = `status ${status}: ${(await res.body.text()).slice(0, 200)}`;
      } else {
        res.body.setEncoding('utf8');
        let buf = '';
        for await (const piece of res.body as AsyncIterable<string>) {
          const at = performance.now();
          buf += piece;
          let sep: RegExpExecArray | null;
          while ((sep = /\r?\n\r?\n/.exec(buf))) {
            const event = buf.slice(0, sep.index);
            buf = buf.slice(sep.index + sep[0].length);
            const data = event
              .split(/\r?\n/)
              .filter((l) => l.startsWith('data:'))
              .map((l) => l.slice(5).replace(/^ /, ''))
              .join('\n');
            if (!data) continue; // comment or keep-alive
            if (data === '[DONE]') {
              done = true;
              continue;
            }
            let chunk: Chunk;
            try {
              chunk = JSON.parse(data) as Chunk;
            } catch {
              streamError = 'an event that is not JSON';
              continue;
            }
            if (chunk.error) streamError = `error event ${chunk.error.code ?? ''} ${chunk.error.message ?? ''}`.trim();
            if (chunk.usage?.completion_tokens !== undefined) usageTokens = chunk.usage.completion_tokens;
            const content = chunk.choices?.[0]?.delta?.content;
            if (typeof content === 'string' && content.length > 0) {
              if (first === undefined) {
                first = at;
                metrics.add('llm_time_to_first_token', at - sent);
              }
              last = at;
              tokens++;
            }
          }
        }
        if (!done && !streamError) streamError = 'the stream ended without [DONE]';
      }
    } catch (err) {
      streamError = describeError(err);
    }
    const ok = status === 200 && done && !streamError;
    http.record(spec, { status, ok, durationMs: performance.now() - sent });
    const received = usageTokens ?? tokens;
    metrics.add('llm_tokens', received);
    if (first !== undefined && last !== undefined && received > 1 && last > first)
      metrics.add('llm_tokens_per_second', ((received - 1) * 1000) / (last - first));
    metrics.check('the completion stream answers 200', status === 200);
    metrics.check('the stream ends with [DONE] and no error event', done && !streamError);
    metrics.check('the answer has the tokens asked for', received === LLM_WORDS);
  },
};
