/**
 * At most `maxConcurrent` requests run; up to `maxQueued` more wait in FIFO order. A request that
 * finds the queue full is refused at once (429); one that waits longer than `queueTimeoutMs` is
 * refused then (503); one whose client goes away leaves the queue.
 */
import { OpenAIError } from '../errors.ts';

interface Waiter {
  resolve: (release: () => void) => void;
  reject: (err: unknown) => void;
}

export interface LimiterOptions {
  maxConcurrent: number;
  maxQueued: number;
  queueTimeoutMs: number;
  onChange?: (running: number, queued: number) => void;
}

export class ConcurrencyLimiter {
  private running = 0;
  private readonly queue: Waiter[] = [];

  private readonly opts: LimiterOptions;

  constructor(opts: LimiterOptions) {
    this.opts = opts;
  }

  get stats(): { running: number; queued: number } {
    return { running: this.running, queued: this.queue.length };
  }

  /** Resolves with a release function once the request may run. */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (this.running < this.opts.maxConcurrent && this.queue.length === 0) {
      this.running++;
      this.changed();
      return Promise.resolve(this.releaser());
    }
    if (this.queue.length >= this.opts.maxQueued) {
      return Promise.reject(
        new OpenAIError(
          'LLMP_ERR_OVERLOADED',
          `The proxy is at capacity (${this.opts.maxConcurrent} running, ${this.queue.length} queued); retry later.`,
          null,
          { retryAfter: 1 },
        ),
      );
    }
    return new Promise((resolve, reject) => {
      const leave = (err: unknown): void => {
        const i = this.queue.indexOf(waiter);
        if (i >= 0) this.queue.splice(i, 1);
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.changed();
        reject(err);
      };
      const onAbort = (): void => leave(signal?.reason ?? new Error('aborted'));
      const waiter: Waiter = {
        resolve: (release) => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          resolve(release);
        },
        reject: leave,
      };
      const timer = setTimeout(
        () =>
          leave(
            new OpenAIError('LLMP_ERR_QUEUE_TIMEOUT', `Waited ${this.opts.queueTimeoutMs} ms in the proxy's queue; retry later.`, null, {
              retryAfter: 1,
            }),
          ),
        this.opts.queueTimeoutMs,
      );
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(waiter);
      this.changed();
    });
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.queue.shift();
      if (next) next.resolve(this.releaser());
      else this.running--;
      this.changed();
    };
  }

  private changed(): void {
    this.opts.onChange?.(this.running, this.queue.length);
  }
}
