/**
 * An answer's tokens as frames: the first token after a quiet spell leaves at once (the time to
 * first token does not change), the tokens that come within `intervalMs` of the last frame are
 * gathered and leave together in the next one, at most `intervalMs` later. A 30-token answer at
 * 10 ms per token is about 11 frames at 30 ms instead of 30: each frame costs a frame-log write
 * (Redis), a write to the gateway, a WebSocket frame and a parse in the IDE. `intervalMs` 0: a
 * frame per token, as the LLM sent them.
 *
 * Frames leave one after the other (`send` is the turn's `emit`: numbered, logged, written), in
 * the order of their tokens. A failed send (the lease was lost) is thrown by the next `push` or
 * `flush`, so the turn stops where it would have stopped; what was gathered after it is dropped.
 */
export class TokenFrames {
  private readonly send: (text: string) => Promise<void>;
  private readonly intervalMs: number;
  private pending = '';
  private pendingTokens = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private lastSent = Number.NEGATIVE_INFINITY;
  /** The frames sent so far, in order; never rejects (a failure is kept in `failure`). */
  private sending: Promise<void> = Promise.resolve();
  private failure: { err: unknown } | undefined;
  private readonly onFrame: ((tokens: number) => void) | undefined;

  /** `onFrame` is told how many tokens each frame carries. */
  constructor(send: (text: string) => Promise<void>, intervalMs: number, onFrame?: (tokens: number) => void) {
    this.send = send;
    this.intervalMs = intervalMs;
    this.onFrame = onFrame;
  }

  /** Adds a token: sends it now (and waits for it) when the last frame is `intervalMs` old, else gathers it for the next frame. */
  async push(token: string): Promise<void> {
    this.throwIfFailed();
    if (!token) return;
    this.pending += token;
    this.pendingTokens++;
    if (this.timer) return;
    const wait = this.lastSent + this.intervalMs - performance.now();
    if (wait <= 0) {
      await this.sendPending();
      this.throwIfFailed();
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.sendPending();
    }, wait);
  }

  /** Sends what is gathered and waits for every frame (before any other frame of the turn); throws what a send failed with. */
  async flush(): Promise<void> {
    this.cancelTimer();
    await this.sendPending();
    this.throwIfFailed();
  }

  /** Drops what is gathered and not sent (the turn stops; its final frame carries the whole text); resolves once a frame under way has left. */
  discard(): Promise<void> {
    this.dropPending();
    return this.sending;
  }

  private dropPending(): void {
    this.cancelTimer();
    this.pending = '';
    this.pendingTokens = 0;
  }

  private cancelTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
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
