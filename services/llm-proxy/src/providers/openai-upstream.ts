/**
 * The `openai` provider: any OpenAI-compatible upstream (LiteLLM, vLLM, Ollama, OpenAI), always
 * asked to stream (with usage), over one keep-alive pool. For each public model the upstream
 * models of the model map are tried in order; each has its circuit breaker. An attempt is retried
 * (jittered backoff) only while nothing has reached the client and only for connect errors, 429
 * and 5xx. Timeouts: connect (pool), first token, idle gap between chunks, whole request.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { PeerClient, PeerUnavailableError, sseEventsIn, sseRuns, type ServiceMetrics } from '@codelab/service-kit';
import { openAIErrorOf, readOpenAIErrorBody, type ChatCompletionChunk } from '@codelab/protocol';
import type { LlmProxyConfig } from '../config.ts';
import { errorForStatus, OpenAIError } from '../errors.ts';
import type { LlmProxyMetrics } from '../metrics.ts';
import type { ModelRoute } from '../model-map.ts';
import { BREAKER_STATE_VALUE, CircuitBreaker, type BreakerPermit } from '../resilience/circuit-breaker.ts';
import { backoffMs, isRetryableStatus } from '../resilience/retry.ts';
import type { Provider, ProviderCall, ProviderEvent, ProviderStream } from './provider.ts';
import { SsePassthrough } from './sse-passthrough.ts';

type TimeoutKind = 'first_token' | 'idle' | 'request';
class UpstreamTimeout extends Error {
  readonly kind: TimeoutKind;

  constructor(kind: TimeoutKind, ms: number) {
    super(
      `upstream ${kind === 'first_token' ? 'sent no first token' : kind === 'idle' ? 'went silent between chunks' : 'did not finish'} within ${ms} ms`,
    );
    this.kind = kind;
  }
}

/** Ends an attempt's request once it is over (a shared reason: `abort()` would build a DOMException with a stack each time). */
const FINISHED = new Error('upstream attempt finished');

interface Failure {
  err: OpenAIError;
  retryable: boolean;
  /** Counts against the upstream's breaker. */
  breaker: boolean;
  reason: string;
  /** The upstream's own Retry-After (seconds). */
  retryAfter?: number | undefined;
}

/** A chunk that carries output (content, tool call or finish), as opposed to the role-only opener. */
export function hasOutput(c: ChatCompletionChunk): boolean {
  const choice = c.choices?.[0];
  return !!choice && (!!choice.delta?.content || !!choice.delta?.tool_calls?.length || !!choice.finish_reason);
}

function retryAfterOf(headers: Record<string, string | string[] | undefined>): number | undefined {
  const v = headers['retry-after'];
  const n = Number(Array.isArray(v) ? v[0] : v);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}

/**
 * A request as the attempts send it: its body encoded once, when the stream starts, and kept as
 * bytes (each target gets it with its own model name in front), with the few fields read later.
 * The stream keeps no object of the request: it carries the whole prompt, and what a stream keeps
 * for its whole answer outlives the garbage collector's young generation.
 */
interface UpstreamCall {
  route: ModelRoute;
  signal: AbortSignal;
  /** The model the client asked for (the name its chunks carry). */
  publicModel: string;
  /** The client asked for a stream, and for its usage chunk. */
  stream: boolean;
  includeUsage: boolean;
  /** The upstream request for `target`: always streaming, with usage. */
  bodyFor(target: string): Buffer;
}

function upstreamCall({ request, route, signal }: ProviderCall): UpstreamCall {
  const { model: _model, ...rest } = request;
  // `{"model":…,` + the rest of the object: the prompt is encoded once, however many attempts
  const tail = Buffer.from(JSON.stringify({ ...rest, stream: true, stream_options: { include_usage: true } }).slice(1));
  return {
    route,
    signal,
    publicModel: request.model,
    stream: request.stream === true,
    includeUsage: request.stream_options?.include_usage === true,
    bodyFor: (target) => Buffer.concat([Buffer.from(`{"model":${JSON.stringify(target)},`), tail]),
  };
}

export class OpenAIUpstreamProvider implements Provider {
  readonly name = 'openai' as const;
  readonly semconvName = 'openai';
  private readonly peer: PeerClient;
  private readonly path: string;
  private readonly breakers = new Map<string, CircuitBreaker>();

  private readonly config: LlmProxyConfig;
  private readonly metrics: LlmProxyMetrics;
  private readonly log: Logger | undefined;

  constructor(
    config: LlmProxyConfig,
    metrics: LlmProxyMetrics,
    serviceMetrics: ServiceMetrics,
    log: Logger | undefined,
    upstreams: readonly string[],
  ) {
    this.config = config;
    this.metrics = metrics;
    this.log = log;
    const url = new URL(config.litellmProxyUrl);
    const base = url.pathname.replace(/\/+$/, '');
    this.path = `${base.endsWith('/v1') ? base : `${base}/v1`}/chat/completions`;
    this.peer = new PeerClient({
      peer: 'llm-upstream',
      baseUrl: url.origin,
      metrics: serviceMetrics,
      connections: config.upstreamConnections,
      connectTimeoutMs: config.connectTimeout * 1000,
      headersTimeoutMs: 0,
      bodyTimeoutMs: 0,
    });
    for (const u of upstreams) this.breaker(u);
  }

  breaker(upstream: string): CircuitBreaker {
    let b = this.breakers.get(upstream);
    if (!b) {
      const label = this.metrics.upstreamLabel(upstream);
      b = new CircuitBreaker({
        failureThreshold: this.config.breakerFailureThreshold,
        resetTimeoutMs: this.config.breakerResetTimeout * 1000,
        onStateChange: (state) => {
          this.metrics.breakerState.set({ upstream: label }, BREAKER_STATE_VALUE[state]);
          this.log?.warn({ upstream, state }, 'circuit breaker changed state');
        },
      });
      this.metrics.breakerState.set({ upstream: label }, 0);
      this.breakers.set(upstream, b);
    }
    return b;
  }

  stream(given: ProviderCall): ProviderStream {
    const call = upstreamCall(given);
    let firstChunkMs: number | undefined;
    let answered: string | undefined;
    const self = this;
    const cfg = this.config;
    const requestMs = cfg.requestTimeout * 1000;
    async function* run(): AsyncGenerator<ProviderEvent, void, undefined> {
      const deadline = new AbortController();
      const deadlineTimer = setTimeout(() => deadline.abort(new UpstreamTimeout('request', requestMs)), requestMs);
      let lastErr: OpenAIError | undefined;
      try {
        for (const target of call.route.targets) {
          const breaker = self.breaker(target);
          const label = self.metrics.upstreamLabel(target);
          for (let attempt = 0; ; attempt++) {
            const permit = breaker.tryAcquire();
            if (!permit) {
              lastErr = new OpenAIError(
                'LLMP_ERR_UPSTREAM_UNAVAILABLE',
                `Upstream ${target} is unavailable (circuit open); retry later.`,
                null,
                { retryAfter: breaker.retryAfterSeconds() },
              );
              break;
            }
            const started = performance.now();
            const attempt$ = await self.attempt(call, target, deadline.signal, permit);
            if ('failure' in attempt$) {
              const f = attempt$.failure;
              if (call.signal.aborted) return;
              lastErr = f.err;
              if (!f.retryable) throw f.err;
              if (attempt >= cfg.maxRetries) break;
              self.metrics.retries.inc({ upstream: label, reason: f.reason });
              await sleep(
                backoffMs(
                  { maxRetries: cfg.maxRetries, baseDelayMs: cfg.retryBaseDelayMs, maxDelayMs: cfg.retryMaxDelayMs },
                  attempt,
                  Math.random,
                  f.retryAfter,
                ),
                undefined,
                {
                  signal: AbortSignal.any([call.signal, deadline.signal]),
                },
              ).catch(() => undefined);
              if (call.signal.aborted) return;
              if (deadline.signal.aborted) throw new OpenAIError('LLMP_ERR_UPSTREAM_TIMEOUT', (deadline.signal.reason as Error).message);
              continue;
            }
            firstChunkMs = attempt$.firstAt - started;
            answered = target;
            yield* attempt$.events;
            return;
          }
          if (lastErr && target !== call.route.targets.at(-1)) self.metrics.fallbacks.inc({ upstream: label });
        }
        throw lastErr ?? new OpenAIError('LLMP_ERR_UPSTREAM_UNAVAILABLE', 'No upstream could answer.');
      } finally {
        clearTimeout(deadlineTimer);
      }
    }
    return { events: run(), upstreamTtftMs: () => firstChunkMs, upstreamModel: () => answered };
  }

  /**
   * One attempt, up to the first output chunk: a failure (nothing was sent to the client), or the
   * time of the first output and the stream from there on.
   */
  private async attempt(
    call: UpstreamCall,
    target: string,
    deadline: AbortSignal,
    permit: BreakerPermit,
  ): Promise<{ failure: Failure } | { firstAt: number; events: AsyncGenerator<ProviderEvent, void, undefined> }> {
    const cfg = this.config;
    const ac = new AbortController();
    const onAbort = (s: AbortSignal) => () => ac.abort(s.reason);
    const fromClient = onAbort(call.signal);
    const fromDeadline = onAbort(deadline);
    call.signal.addEventListener('abort', fromClient, { once: true });
    deadline.addEventListener('abort', fromDeadline, { once: true });
    if (call.signal.aborted || deadline.aborted) ac.abort(call.signal.reason ?? deadline.reason);
    let timer: NodeJS.Timeout | undefined;
    const arm = (kind: TimeoutKind, ms: number): void => {
      clearTimeout(timer);
      timer = setTimeout(() => ac.abort(new UpstreamTimeout(kind, ms)), ms);
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      call.signal.removeEventListener('abort', fromClient);
      deadline.removeEventListener('abort', fromDeadline);
    };
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (cfg.litellmApiKey) headers.authorization = `Bearer ${cfg.litellmApiKey}`;
    const body = call.bodyFor(target);

    const classify = (err: unknown): Failure => {
      const reason = ac.signal.aborted ? ac.signal.reason : undefined;
      if (reason instanceof UpstreamTimeout) {
        return {
          err: new OpenAIError('LLMP_ERR_UPSTREAM_TIMEOUT', reason.message),
          retryable: false,
          breaker: true,
          reason: `${reason.kind}_timeout`,
        };
      }
      if (err instanceof OpenAIError) return { err, retryable: false, breaker: false, reason: 'error' };
      const timeout = err instanceof PeerUnavailableError && err.timeout;
      return {
        err: new OpenAIError(
          timeout ? 'LLMP_ERR_UPSTREAM_TIMEOUT' : 'LLMP_ERR_UPSTREAM_UNAVAILABLE',
          `Upstream ${target}: ${(err as Error).message}`,
          null,
          timeout ? {} : { retryAfter: 1 },
        ),
        retryable: true,
        breaker: true,
        reason: timeout ? 'connect_timeout' : 'connect_error',
      };
    };
    const fail = (f: Failure): { failure: Failure } => {
      cleanup();
      if (!ac.signal.aborted) ac.abort(FINISHED);
      if (call.signal.aborted) permit.release();
      else if (f.breaker) permit.failure();
      else permit.release();
      return { failure: f };
    };

    arm('first_token', cfg.firstTokenTimeout * 1000);
    let runs: AsyncIterator<string>;
    const buffered: ChatCompletionChunk[] = [];
    /** What followed the first output in its run. */
    let rest = '';
    try {
      const res = await this.peer.request({
        method: 'POST',
        path: this.path,
        route: '/v1/chat/completions',
        headers,
        body,
        signal: ac.signal,
      });
      if (res.statusCode !== 200) {
        const { message } = readOpenAIErrorBody(await res.body.text().catch(() => ''));
        const status = res.statusCode;
        const msg = `Upstream ${target} answered ${status}: ${message}`;
        const err =
          status === 401 || status === 403 || status === 500
            ? errorForStatus(502, msg)
            : errorForStatus(status, msg, retryAfterOf(res.headers));
        return fail({
          err,
          retryable: isRetryableStatus(status),
          breaker: status >= 500,
          reason: `status_${status >= 500 ? '5xx' : status}`,
          retryAfter: retryAfterOf(res.headers),
        });
      }
      runs = sseRuns(res.body)[Symbol.asyncIterator]();
      let first = false;
      while (!first) {
        const next = await runs.next();
        if (next.done)
          return fail({
            err: new OpenAIError('LLMP_ERR_UPSTREAM_ERROR', `Upstream ${target} ended its stream without any output.`),
            retryable: true,
            breaker: true,
            reason: 'empty_stream',
          });
        for (const ev of sseEventsIn(next.value)) {
          if (ev.data === '[DONE]') {
            return fail({
              err: new OpenAIError('LLMP_ERR_UPSTREAM_ERROR', `Upstream ${target} ended its stream without any output.`),
              retryable: true,
              breaker: true,
              reason: 'empty_stream',
            });
          }
          const chunk = JSON.parse(ev.data) as ChatCompletionChunk;
          const error = openAIErrorOf(chunk);
          if (error) {
            return fail({
              err: new OpenAIError('LLMP_ERR_UPSTREAM_ERROR', `Upstream ${target} failed: ${error.message ?? 'unknown error'}`),
              retryable: true,
              breaker: true,
              reason: 'stream_error',
            });
          }
          buffered.push(chunk);
          if (hasOutput(chunk) || (chunk.usage && !chunk.choices?.length)) {
            first = true;
            rest = next.value.slice(ev.end);
            break;
          }
        }
      }
    } catch (err) {
      if (call.signal.aborted)
        return fail({
          err: new OpenAIError('LLMP_ERR_INTERNAL', 'client disconnected'),
          retryable: false,
          breaker: false,
          reason: 'client',
        });
      return fail(classify(err));
    }
    permit.success();
    const firstAt = performance.now();
    const idleMs = cfg.idleTimeout * 1000;
    arm('idle', idleMs);
    const { publicModel } = call;
    // A streaming client gets the upstream's text as it is; a non-streaming answer (or one whose
    // content the span records) needs every chunk decoded.
    const passthrough = call.stream && !cfg.captureMessageContent ? new SsePassthrough(target, publicModel, call.includeUsage) : undefined;
    const brokeOff = (): OpenAIError => new OpenAIError('LLMP_ERR_UPSTREAM_ERROR', `Upstream ${target} ended its stream before [DONE].`);
    async function* events(): AsyncGenerator<ProviderEvent, void, undefined> {
      try {
        for (const c of buffered) yield { type: 'chunk', chunk: c.model === publicModel ? c : { ...c, model: publicModel } };
        for (let run = rest; ; ) {
          if (passthrough) {
            const f = passthrough.forward(run);
            if (f.text) yield { type: 'sse', text: f.text, events: f.events, usage: f.usage, finish: f.finish };
            if (f.error !== undefined) throw new OpenAIError('LLMP_ERR_UPSTREAM_ERROR', `Upstream ${target} failed mid-stream: ${f.error}`);
            if (f.done) return;
          } else {
            for (const ev of sseEventsIn(run)) {
              if (ev.data === '[DONE]') return;
              const chunk = JSON.parse(ev.data) as ChatCompletionChunk;
              const error = openAIErrorOf(chunk);
              if (error)
                throw new OpenAIError(
                  'LLMP_ERR_UPSTREAM_ERROR',
                  `Upstream ${target} failed mid-stream: ${error.message ?? 'unknown error'}`,
                );
              yield chunk.model === publicModel
                ? { type: 'chunk', chunk, raw: ev.data }
                : { type: 'chunk', chunk: { ...chunk, model: publicModel } };
            }
          }
          const next = await runs.next();
          if (next.done) throw brokeOff();
          arm('idle', idleMs);
          run = next.value;
        }
      } catch (err) {
        if (call.signal.aborted) return;
        if (err instanceof OpenAIError) throw err;
        const reason = ac.signal.aborted ? ac.signal.reason : undefined;
        if (reason instanceof UpstreamTimeout) throw new OpenAIError('LLMP_ERR_UPSTREAM_TIMEOUT', reason.message);
        throw new OpenAIError('LLMP_ERR_UPSTREAM_ERROR', `Upstream ${target} broke off its stream: ${(err as Error).message}`, null, {
          cause: err,
        });
      } finally {
        cleanup();
        if (!ac.signal.aborted) ac.abort(FINISHED);
      }
    }
    return { firstAt, events: events() };
  }

  close(): Promise<void> {
    return this.peer.close();
  }
}
