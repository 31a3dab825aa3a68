/**
 * An answer's tokens as frames: the first token after a quiet spell leaves at once (the time to
 * first token does not change), the tokens that come within `intervalMs` of the last frame are
 * gathered and leave together in the next one, at most `intervalMs` later. A 30-token answer at
 * 10 ms per token is about 11 frames at 30 ms instead of 30: each frame costs a frame-log write
 * (Redis), a write to the gateway, a WebSocket frame and a parse in the IDE. `intervalMs` 0: a
 * frame per token, as the LLM sent them.
 *
 * The gathered frames of all the answers a runtime streams leave on one clock (`FrameClock`): at
 * the same tick, in the same event-loop turn, so that their frame-log writes go to Redis as one
 * pipeline (frame-log.ts) instead of one round trip per answer and frame, and the runtime wakes
 * once per tick rather than once per answer.
 *
 * Frames leave one after the other (`send` is the turn's `emit`: numbered, logged, written), in
 * the order of their tokens. A failed send (the lease was lost) is thrown by the next `push` or
 * `flush`, so the turn stops where it would have stopped; what was gathered after it is dropped.
 */

/**
 * The tick that gathered token frames leave at, shared by the answers of a process. The first
 * answer that waits while no tick is due sets the next one (when its own interval since its last
 * frame is up); every answer that waits meanwhile leaves at that same tick. So no answer waits
 * longer than `intervalMs` for its gathered tokens, and the answers streaming at once leave
 * together. No timer runs while nothing waits.
 */
export class FrameClock {
  readonly intervalMs: number;
  private waiting = new Set<() => void>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly onTick: ((answers: number) => void) | undefined;

  /** `intervalMs` 0: tokens are not gathered (a frame per token). `onTick` is told how many answers left at each tick. */
  constructor(intervalMs: number, onTick?: (answers: number) => void) {
    this.intervalMs = Math.max(0, intervalMs);
    this.onTick = onTick;
  }

  /** Calls `fn` at the next tick, in at most `delayMs` (when no tick is due yet, in `delayMs`); the result cancels it. */
  atNextTick(fn: () => void, delayMs: number): () => void {
    this.waiting.add(fn);
    this.timer ??= setTimeout(this.tick, Math.max(0, Math.min(delayMs, this.intervalMs)));
    return () => {
      this.waiting.delete(fn);
      if (this.waiting.size === 0 && this.timer) {
        clearTimeout(this.timer);
        this.timer = undefined;
      }
    };
  }

  /** Every waiter is called, even after one of them threw (the first error is thrown once all have run). */
  private readonly tick = (): void => {
    this.timer = undefined;
    const due = this.waiting;
    this.waiting = new Set();
    let failed: { err: unknown } | undefined;
    for (const fn of due) {
      try {
        fn();
      } catch (err) {
        failed ??= { err };
      }
    }
    this.onTick?.(due.size);
    if (failed) throw failed.err;
  };
}

export class TokenFrames {
  private readonly send: (text: string) => Promise<void>;
  private readonly clock: FrameClock;
  private pending = '';
  private pendingTokens = 0;
  /** Cancels the wait for the clock's next tick, while gathered tokens wait for it. */
  private cancelWait: (() => void) | undefined;
  private lastSent = Number.NEGATIVE_INFINITY;
  /** The frames sent so far, in order; never rejects (a failure is kept in `failure`). */
  private sending: Promise<void> = Promise.resolve();
  private failure: { err: unknown } | undefined;
  private readonly onFrame: ((tokens: number) => void) | undefined;

  /** `onFrame` is told how many tokens each frame carries. */
  constructor(send: (text: string) => Promise<void>, clock: FrameClock, onFrame?: (tokens: number) => void) {
    this.send = send;
    this.clock = clock;
    this.onFrame = onFrame;
  }

  /** Adds a token: sends it now (and waits for it) when the last frame is `intervalMs` old, else gathers it for the clock's next tick. */
  async push(token: string): Promise<void> {
    this.throwIfFailed();
    if (!token) return;
    this.pending += token;
    this.pendingTokens++;
    if (this.cancelWait) return;
    const wait = this.lastSent + this.clock.intervalMs - performance.now();
    if (wait <= 0) {
      await this.sendPending();
      this.throwIfFailed();
      return;
    }
    this.cancelWait = this.clock.atNextTick(() => {
      this.cancelWait = undefined;
      void this.sendPending();
    }, wait);
  }

  /** Sends what is gathered and waits for every frame (before any other frame of the turn); throws what a send failed with. */
  async flush(): Promise<void> {
    this.stopWaiting();
    await this.sendPending();
    this.throwIfFailed();
  }

  /** Drops what is gathered and not sent (the turn stops; its final frame carries the whole text); resolves once a frame under way has left. */
  discard(): Promise<void> {
    this.dropPending();
    return this.sending;
  }

  private dropPending(): void {
    this.stopWaiting();
    this.pending = '';
    this.pendingTokens = 0;
  }

  private stopWaiting(): void {
    this.cancelWait?.();
    this.cancelWait = undefined;
  }

  private sendPending(): Promise<void> {
    const text = this.pending;
    const tokens = this.pendingTokens;
    if (!text || this.failure) return this.sending;
    this.pending = '';
    this.pendingTokens = 0;
    this.lastSent = performance.now();
    this.sending = this.sending.then(async () => {
      if (this.failure) return;
      try {
        await this.send(text);
        this.onFrame?.(tokens);
      } catch (err) {
        this.failure = { err };
        this.dropPending();
      }
    });
    return this.sending;
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure.err;
  }
}
