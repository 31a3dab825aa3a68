/**
 * The mock provider: deterministic answers (text, tool calls, the routing classifier's JSON) with a
 * latency profile and fault injection, set by config and per request (`[[mock:…]]` directives).
 * Random draws (latency distributions, fault rates) come from one PRNG seeded by `LLM_PROXY__MOCK_SEED`.
 */
import { createHash, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChatCompletionChunk, ChatCompletionRequest, ToolCallDelta } from '@codelab/protocol';
import type { LlmProxyConfig } from '../config.ts';
import { errorForStatus, OpenAIError } from '../errors.ts';
import { afterToolReply, countPromptTokens, lastRole, lastUserText, mockReply, tokenize } from '../mock-llm.ts';
import { classify, isClassifierRequest } from './classifier.ts';
import { parseDirectives, stripDirectives, type MockScript } from './mock-directives.ts';
import type { Provider, ProviderCall, ProviderEvent, ProviderStream } from './provider.ts';

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type MockConfig = Pick<
  LlmProxyConfig,
  | 'mockTtftMs'
  | 'mockTokenDelayMs'
  | 'mockLatencyDistribution'
  | 'mockErrorRate'
  | 'mockErrorStatus'
  | 'mockStallRate'
  | 'mockStallMs'
  | 'mockDisconnectRate'
  | 'mockSeed'
>;

function headerScripts(headers: ProviderCall['headers']): string[] {
  const v = headers['x-mock'];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/** Splits a tool call's arguments into pieces, as real models stream them. */
function pieces(text: string, size = 8): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out.length ? out : [''];
}

/**
 * `[[mock:disconnect_after N]]`, LLM_PROXY__MOCK_DISCONNECT_RATE: the connection drops without a
 * word. What was written leaves first, then the socket is destroyed: a stream ends without an
 * error event, `[DONE]` or the chunked terminator; a non-streaming request gets no answer at all.
 */
const INJECTED_DISCONNECT: ProviderEvent = {
  type: 'cut',
  outcome: 'injected_disconnect',
  async cut(response) {
    if (response.headersSent) await new Promise<void>((resolve) => response.write('', () => resolve()));
    response.destroy();
  },
};

/** What a request's answer will be (`MockProvider.plan`). */
interface MockPlan {
  model: string;
  script: MockScript;
  content: string[];
  toolDeltas: ToolCallDelta[];
  maxTokens: number | undefined;
  promptTokens: number;
}

export class MockProvider implements Provider {
  readonly name = 'mock' as const;
  readonly semconvName = 'codelab.mock';
  private readonly random: () => number;
  private readonly errorCounts = new Map<string, number>();

  private readonly config: MockConfig;

  constructor(config: MockConfig) {
    this.config = config;
    this.random = seededRandom(config.mockSeed);
  }

  private draw(meanMs: number): number {
    switch (this.config.mockLatencyDistribution) {
      case 'uniform':
        return Math.round(this.random() * 2 * meanMs);
      case 'exponential':
        return Math.round(-meanMs * Math.log(1 - this.random()));
      default:
        return meanMs;
    }
  }

  /**
   * The script of one request: its directives, then the configured faults. The answer-shaping
   * directives of the last user message (tool_call, reply, words) script the answer to that
   * message only: once tool results follow it, the mock answers them instead.
   */
  script(call: ProviderCall): MockScript {
    const sources = [...headerScripts(call.headers), lastUserText(call.request.messages)];
    const script = parseDirectives(sources);
    if (lastRole(call.request.messages) !== 'user') {
      const fromHeaders = parseDirectives(headerScripts(call.headers));
      script.toolCalls = fromHeaders.toolCalls;
      script.reply = fromHeaders.reply;
      script.words = fromHeaders.words;
    }
    script.errorKey = `${call.request.model}\n${sources.join('\n')}`;
    if (script.problems.length) throw new OpenAIError('LLMP_ERR_INVALID_REQUEST', `mock: ${script.problems.join('; ')}`);
    const c = this.config;
    if (c.mockErrorRate > 0 && this.random() < c.mockErrorRate) script.error ??= { status: c.mockErrorStatus };
    if (c.mockStallRate > 0 && this.random() < c.mockStallRate) script.stallMs ??= c.mockStallMs;
    if (c.mockDisconnectRate > 0 && this.random() < c.mockDisconnectRate) script.disconnectAfter ??= 3;
    return script;
  }

  stream(call: ProviderCall): ProviderStream {
    let firstChunkMs: number | undefined;
    const started = performance.now();
    const self = this;
    const { signal } = call;
    // Everything the answer needs is read from the request now: the stream keeps none of it (the
    // request carries the whole prompt, and what a stream keeps outlives the young generation).
    let plan: MockPlan | undefined;
    let refused: unknown;
    try {
      plan = this.plan(call);
    } catch (err) {
      refused = err; // (thrown by the stream, as every error before its first output)
    }
    async function* run(): AsyncGenerator<ProviderEvent, void, undefined> {
      if (!plan) throw refused;
      const { model, script, content, toolDeltas, maxTokens, promptTokens } = plan;
      if (script.error && (script.error.model === undefined || script.error.model === model)) {
        const key = script.errorKey ?? '';
        const seen = self.errorCounts.get(key) ?? 0;
        if (script.error.times === undefined || seen < script.error.times) {
          if (script.error.times !== undefined) {
            if (self.errorCounts.size >= 10_000) self.errorCounts.clear(); // bounded: a test's counters are short-lived
            self.errorCounts.set(key, seen + 1);
          }
          throw errorForStatus(
            script.error.status,
            `mock: injected error ${script.error.status}`,
            script.error.status === 429 || script.error.status === 503 ? 1 : undefined,
          );
        }
      }
      const id = `chatcmpl-${randomUUID()}`;
      const created = Math.floor(Date.now() / 1000);
      const chunk = (delta: ChatCompletionChunk['choices'][number]['delta'], finish: string | null = null): ProviderEvent => ({
        type: 'chunk',
        chunk: {
          id,
          object: 'chat.completion.chunk',
          created,
          model,
          choices: [{ index: 0, delta, finish_reason: finish }],
        },
      });
      const parts: (string | ToolCallDelta)[] = [...content, ...toolDeltas];
      const limited = maxTokens !== undefined && parts.length > maxTokens ? parts.slice(0, maxTokens) : parts;
      const finish = limited.length < parts.length ? 'length' : toolDeltas.length ? 'tool_calls' : 'stop';

      yield chunk({ role: 'assistant', content: '' });
      const ttft = (script.ttftMs ?? self.draw(self.config.mockTtftMs)) + (script.stallMs ?? 0);
      const tokenDelay = (): number => script.tokenDelayMs ?? self.draw(self.config.mockTokenDelayMs);
      for (let i = 0; i < limited.length; i++) {
        if (script.disconnectAfter !== undefined && i === script.disconnectAfter) {
          yield INJECTED_DISCONNECT;
          return;
        }
        if (script.errorAfter && i === script.errorAfter.tokens)
          throw errorForStatus(script.errorAfter.status, `mock: injected mid-stream error ${script.errorAfter.status}`);
        let delay = i === 0 ? ttft : tokenDelay();
        if (script.stallAfter && i === script.stallAfter.tokens) delay += script.stallAfter.ms;
        if (delay > 0) await sleep(delay, undefined, { signal });
        if (signal.aborted) return;
        const part = limited[i]!;
        if (i === 0) firstChunkMs = performance.now() - started;
        yield typeof part === 'string' ? chunk({ content: part }) : chunk({ tool_calls: [part] });
      }
      yield chunk({}, finish);
      yield {
        type: 'chunk',
        chunk: {
          id,
          object: 'chat.completion.chunk',
          created,
          model,
          choices: [],
          usage: { prompt_tokens: promptTokens, completion_tokens: limited.length, total_tokens: promptTokens + limited.length },
        },
      };
    }
    const target = call.route.targets[0];
    return { events: run(), upstreamTtftMs: () => firstChunkMs, upstreamModel: () => target };
  }

  /** What a request's answer will be, read from the request once (its script and tokens, the prompt's size). */
  private plan(call: ProviderCall): MockPlan {
    const { request } = call;
    const script = this.script(call);
    const { content, toolDeltas } = this.answer(request, script);
    return {
      model: request.model,
      script,
      content,
      toolDeltas,
      maxTokens: request.max_completion_tokens ?? request.max_tokens,
      promptTokens: countPromptTokens(request.messages),
    };
  }

  /** Content tokens and tool-call deltas of the answer. */
  private answer(request: ChatCompletionRequest, script: MockScript): { content: string[]; toolDeltas: ToolCallDelta[] } {
    const toolDeltas: ToolCallDelta[] = [];
    const hash = createHash('sha256').update(JSON.stringify(request.messages)).digest('hex').slice(0, 12);
    script.toolCalls.forEach((call, index) => {
      const args = pieces(call.arguments);
      toolDeltas.push({ index, id: `call_${hash}_${index}`, type: 'function', function: { name: call.name, arguments: args[0]! } });
      for (const piece of args.slice(1)) toolDeltas.push({ index, function: { arguments: piece } });
    });
    let text: string;
    if (isClassifierRequest(request.messages)) {
      // the routing classifier always gets its JSON: the user's directives script the agent's answer
      toolDeltas.length = 0;
      text = JSON.stringify(classify(request.messages));
    } else if (script.reply !== undefined) text = script.reply;
    else if (script.words !== undefined) text = Array.from({ length: script.words }, (_, i) => `w${i}`).join(' ');
    else if (script.toolCalls.length) text = '';
    else if (lastRole(request.messages) === 'tool') text = afterToolReply(request.messages);
    else {
      const cleaned = request.messages.map((m) =>
        m.role === 'user' && typeof m.content === 'string' ? { ...m, content: stripDirectives(m.content) } : m,
      );
      text = mockReply(cleaned);
    }
    return { content: tokenize(text), toolDeltas };
  }

  async close(): Promise<void> {}
}
