/**
 * The turns running on this instance, so that a `cancel` can stop one. A cancel that arrives at
 * another instance reaches this one over Redis pub/sub (when the runtime has Redis); without
 * Redis there is one instance, and the local registry is all there is.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { FrameLog } from './frame-log.ts';

const CHANNEL = 'codelab:turn-cancel';

export class CancelledError extends Error {
  constructor() {
    super('the turn was cancelled');
  }
}

export class RunningTurns {
  private readonly local = new Map<string, AbortController>();
  private subscriber: Redis | undefined;
  private readonly frameLog: FrameLog;
  private readonly redis: Redis | undefined;
  private readonly logger: Logger;

  constructor(frameLog: FrameLog, redis: Redis | undefined, logger: Logger) {
    this.frameLog = frameLog;
    this.redis = redis;
    this.logger = logger;
  }

  async start(): Promise<void> {
    if (!this.redis) return;
    this.subscriber = this.redis.duplicate({ enableOfflineQueue: true });
    this.subscriber.on('message', (_channel: string, sessionId: string) => this.abortLocal(sessionId));
    this.subscriber.on('error', () => undefined); // the main client logs Redis outages
    await this.subscriber
      .subscribe(CHANNEL)
      .catch((err: Error) =>
        this.logger.warn({ err: { message: err.message } }, 'cancel channel unavailable: cancels reach this instance only'),
      );
  }

  /** Registers a turn; its signal aborts on cancel, or on `stop`. */
  begin(sessionId: string): { signal: AbortSignal; stop: (reason: Error) => void; end: () => void } {
    const ac = new AbortController();
    this.local.set(sessionId, ac);
    return {
      signal: ac.signal,
      stop: (reason) => {
        if (!ac.signal.aborted) ac.abort(reason);
      },
      end: () => {
        if (this.local.get(sessionId) === ac) this.local.delete(sessionId);
      },
    };
  }

  private abortLocal(sessionId: string): boolean {
    const ac = this.local.get(sessionId);
    if (!ac || ac.signal.aborted) return false;
    ac.abort(new CancelledError());
    return true;
  }

  /** Stops the session's running turn wherever it runs; false when none was running. */
  async cancel(sessionId: string): Promise<boolean> {
    if (this.abortLocal(sessionId)) return true;
    if (!this.redis || !(await this.frameLog.isRunning(sessionId))) return false;
    await this.redis.publish(CHANNEL, sessionId);
    return true;
  }

  async close(): Promise<void> {
    this.subscriber?.disconnect();
  }
}
