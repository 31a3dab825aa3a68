/**
 * The turn frames (and the in-place answers to bad frames) waiting on one connection, in order:
 * bounded by GATEWAY__WS_MAX_QUEUED_FRAMES, and kept in the `gateway_ws_queued_frames` gauge.
 */
export class FrameQueue<T> {
  private items: T[] = [];
  private readonly max: number;
  private readonly gauge: { inc(n?: number): void; dec(n?: number): void };

  constructor(max: number, gauge: { inc(n?: number): void; dec(n?: number): void }) {
    this.max = max;
    this.gauge = gauge;
  }

  get length(): number {
    return this.items.length;
  }

  /** False when the queue is full (the item is refused). */
  push(item: T): boolean {
    if (this.items.length >= this.max) return false;
    this.items.push(item);
    this.gauge.inc();
    return true;
  }

  shift(): T | undefined {
    if (this.items.length === 0) return undefined;
    this.gauge.dec();
    return this.items.shift();
  }

  clear(): void {
    if (this.items.length > 0) this.gauge.dec(this.items.length);
    this.items = [];
  }
}
