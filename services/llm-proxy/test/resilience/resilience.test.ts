/** Unit tests of the breaker, the limiter, the retry backoff and the mock's directive parser. */
import { describe, expect, it } from 'vitest';
import { parseDirectives } from '../../src/providers/mock-directives.ts';
import { seededRandom } from '../../src/providers/mock.ts';
import { CircuitBreaker } from '../../src/resilience/circuit-breaker.ts';
import { ConcurrencyLimiter } from '../../src/resilience/concurrency-limiter.ts';
import { backoffMs, isRetryableStatus } from '../../src/resilience/retry.ts';
import { OpenAIError } from '../../src/errors.ts';

describe('CircuitBreaker', () => {
  it('opens after N consecutive failures, half-opens for exactly one probe, closes on its success', () => {
    let now = 0;
    const states: string[] = [];
    const b = new CircuitBreaker({ failureThreshold: 2, resetTimeoutMs: 1000, now: () => now, onStateChange: (s) => states.push(s) });
    b.tryAcquire()!.failure();
    b.tryAcquire()!.success(); // a success resets the count
    b.tryAcquire()!.failure();
    expect(b.current).toBe('closed');
    b.tryAcquire()!.failure();
    expect(b.current).toBe('open');
    expect(b.tryAcquire()).toBeUndefined();
    expect(b.retryAfterSeconds()).toBe(1);
    now = 1000;
    const probe = b.tryAcquire();
    expect(probe).toBeDefined();
    expect(b.current).toBe('half_open');
    expect(b.tryAcquire()).toBeUndefined();
    probe!.success();
    expect(b.current).toBe('closed');
    expect(states).toEqual(['open', 'half_open', 'closed']);
  });

  it('a released probe (client gone) lets the next call probe', () => {
    let now = 0;
    const b = new CircuitBreaker({ failureThreshold: 1, resetTimeoutMs: 10, now: () => now });
    b.tryAcquire()!.failure();
    now = 10;
    b.tryAcquire()!.release();
    expect(b.tryAcquire()).toBeDefined();
  });
});

describe('ConcurrencyLimiter', () => {
  it('runs up to the limit, queues FIFO, refuses when the queue is full', async () => {
    const l = new ConcurrencyLimiter({ maxConcurrent: 1, maxQueued: 1, queueTimeoutMs: 10_000 });
    const r1 = await l.acquire();
    const p2 = l.acquire();
    await expect(l.acquire()).rejects.toMatchObject({ def: { status: 429 } });
    expect(l.stats).toEqual({ running: 1, queued: 1 });
    r1();
    const r2 = await p2;
    expect(l.stats).toEqual({ running: 1, queued: 0 });
    r2();
    expect(l.stats).toEqual({ running: 0, queued: 0 });
  });

  it('a waiter whose client leaves drops out of the queue', async () => {
    const l = new ConcurrencyLimiter({ maxConcurrent: 1, maxQueued: 5, queueTimeoutMs: 10_000 });
    await l.acquire();
    const ac = new AbortController();
    const p = l.acquire(ac.signal);
    ac.abort(new Error('gone'));
    await expect(p).rejects.toThrow('gone');
    expect(l.stats.queued).toBe(0);
  });

  it('a waiter that waits too long gets 503', async () => {
    const l = new ConcurrencyLimiter({ maxConcurrent: 1, maxQueued: 5, queueTimeoutMs: 20 });
    await l.acquire();
    const err = await l.acquire().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAIError);
    expect((err as OpenAIError).statusCode).toBe(503);
  });
});

describe('retry policy', () => {
  it('retries only 429 and 5xx, with capped full-jitter backoff', () => {
    expect([400, 401, 404, 422, 429, 500, 502, 503, 504].filter(isRetryableStatus)).toEqual([429, 500, 502, 503, 504]);
    const policy = { maxRetries: 3, baseDelayMs: 100, maxDelayMs: 1000 };
    expect(backoffMs(policy, 0, () => 0.999)).toBeLessThanOrEqual(100);
    expect(backoffMs(policy, 5, () => 0.999)).toBeLessThanOrEqual(1000);
    expect(backoffMs(policy, 0, () => 0.5, 0.5)).toBe(500); // Retry-After within the cap wins
    expect(backoffMs(policy, 0, () => 0.5, 30)).toBe(50); // beyond the cap: ignored
  });
});

describe('mock directives', () => {
  it('parses every directive, and reports bad ones', () => {
    const s = parseDirectives([
      '[[mock:tool_call read_file {"path":"a.py"}]] [[mock:error 503 2 model=x]] [[mock:error_after 3]] [[mock:disconnect_after 5]] [[mock:stall 10]] [[mock:stall_after 2 30]] [[mock:ttft 50]] [[mock:token_delay 7]] [[mock:words 9]]',
    ]);
    expect(s).toMatchObject({
      toolCalls: [{ name: 'read_file', arguments: '{"path":"a.py"}' }],
      error: { status: 503, times: 2, model: 'x' },
      errorAfter: { tokens: 3, status: 502 },
      disconnectAfter: 5,
      stallMs: 10,
      stallAfter: { tokens: 2, ms: 30 },
      ttftMs: 50,
      tokenDelayMs: 7,
      words: 9,
      problems: [],
    });
    expect(parseDirectives(['[[mock:nope]] [[mock:tool_call f {bad json]]']).problems).toHaveLength(2);
  });

  it('the seeded PRNG repeats', () => {
    const a = seededRandom(7);
    const b = seededRandom(7);
    expect([a(), a(), a()]).toEqual([b(), b(), b()]);
  });
});
