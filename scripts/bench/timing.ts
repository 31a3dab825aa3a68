/** What the benchmarks share: percentiles and medians, and one conversation turn timed as the client sees it. */
import { request, type Dispatcher } from 'undici';
import type { FrameClient } from '../../test/helpers/stack.ts';

/** The p-th percentile (nearest rank) of `xs`. */
export const pct = (xs: readonly number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN;
};

/** The median of `xs` (the mean of the middle two when their number is even). */
export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

export interface TimedTurn {
  /** Message sent → first token frame (a new session's first frame is the orchestrator's agent_switched). */
  ttftMs: number;
  totalMs: number;
  tokens: number;
}

/** Sends a user_message on `client` and times its turn; throws when the turn does not end with an answer. */
export async function timedTurn(client: FrameClient, content: string, timeoutMs = 60_000): Promise<TimedTurn> {
  const from = client.frames.length;
  const started = performance.now();
  let first = 0;
  const onFrame = (data: Buffer): void => {
    if (!first && data.includes('"token"')) {
      first = performance.now();
      client.ws.off('message', onFrame);
    }
  };
  client.ws.on('message', onFrame);
  client.send({ type: 'user_message', content, role: 'user' });
  const frames = await client.until((f) => f.is_final === true, from, timeoutMs);
  const final = frames.at(-1)!;
  if (final.type !== 'assistant_message') throw new Error(`turn failed: ${JSON.stringify(final)}`);
  return {
    ttftMs: first - started,
    totalMs: performance.now() - started,
    tokens: frames.filter((f) => typeof f.token === 'string').length,
  };
}

export interface DirectStream {
  /** Request sent → first content chunk. */
  ttftMs: number;
  totalMs: number;
  tokens: number;
}

/**
 * One streamed chat completion straight from an llm-proxy (the reference for the platform's
 * numbers): time to the first content chunk as this client sees it. `dispatcher` is an undici Agent
 * with enough connections for the concurrency (fetch's default pool would queue).
 */
export async function directStream(llmUrl: string, internalKey: string, content: string, dispatcher: Dispatcher): Promise<DirectStream> {
  const started = performance.now();
  const res = await request(`${llmUrl}/v1/chat/completions`, {
    method: 'POST',
    dispatcher,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${internalKey}` },
    body: JSON.stringify({ model: 'fake-llm', stream: true, messages: [{ role: 'user', content }] }),
  });
  if (res.statusCode !== 200) throw new Error(`${llmUrl} answered ${res.statusCode}: ${await res.body.text()}`);
  let first = 0;
  let tokens = 0;
  let done = false;
  for await (const chunk of res.body) {
    const text = (chunk as Buffer).toString('latin1');
    for (let i = text.indexOf('"content":"'); i >= 0; i = text.indexOf('"content":"', i + 1)) {
      if (text[i + 11] === '"') continue; // the empty opener
      tokens++;
      if (!first) first = performance.now();
    }
    if (text.includes('[DONE]')) done = true;
  }
  if (!done) throw new Error('stream ended without [DONE]');
  return { ttftMs: first - started, totalMs: performance.now() - started, tokens };
}
