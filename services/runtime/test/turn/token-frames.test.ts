import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FrameClock, TokenFrames } from '../../src/turn/token-frames.ts';

/** A frame sink that records what was sent, and can hold a send until the test lets it go. */
function sink() {
  const sent: string[] = [];
  const counts: number[] = [];
  let hold: Promise<void> | undefined;
  let failWith: Error | undefined;
  return {
    sent,
    counts,
    send: async (text: string): Promise<void> => {
      if (failWith) throw failWith;
      if (hold) await hold;
      sent.push(text);
    },
    onFrame: (n: number): void => void counts.push(n),
    holdNext(): () => void {
      let release!: () => void;
      hold = new Promise<void>((r) => {
        release = r;
      });
      return () => {
        hold = undefined;
        release();
      };
    },
    fail(err: Error): void {
      failWith = err;
    },
  };
}

describe('TokenFrames', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('with interval 0, sends every token as its own frame, in order, before push resolves', async () => {
    const s = sink();
    const frames = new TokenFrames(s.send, new FrameClock(0), s.onFrame);
    for (const t of ['a ', 'b ', 'c ']) {
      await frames.push(t);
      expect(s.sent.at(-1)).toBe(t);
    }
    await frames.flush();
    expect(s.sent).toEqual(['a ', 'b ', 'c ']);
    expect(s.counts).toEqual([1, 1, 1]);
  });

  it('sends the first token at once, gathers the next ones for at most the interval, and flushes the rest', async () => {
    const s = sink();
    const frames = new TokenFrames(s.send, new FrameClock(30), s.onFrame);
    await frames.push('a ');
    expect(s.sent).toEqual(['a ']); // the time to first token is not delayed
    await vi.advanceTimersByTimeAsync(10);
    await frames.push('b ');
    await vi.advanceTimersByTimeAsync(10);
    await frames.push('c ');
    expect(s.sent).toEqual(['a ']);
    await vi.advanceTimersByTimeAsync(9);
    expect(s.sent).toEqual(['a ']); // 29 ms after the first frame
    await vi.advanceTimersByTimeAsync(1);
    expect(s.sent).toEqual(['a ', 'b c ']);
    await vi.advanceTimersByTimeAsync(5);
    await frames.push('d '); // 5 ms after a frame: gathered
    expect(s.sent).toEqual(['a ', 'b c ']);
    await frames.flush(); // the answer ends: what is gathered leaves now
    expect(s.sent).toEqual(['a ', 'b c ', 'd ']);
    expect(s.counts).toEqual([1, 2, 1]);
    await frames.flush(); // nothing left: no empty frame
    expect(s.sent).toHaveLength(3);
  });

  it('after a quiet spell of the interval, the next token leaves at once again', async () => {
    const s = sink();
    const frames = new TokenFrames(s.send, new FrameClock(30));
    await frames.push('a ');
    await vi.advanceTimersByTimeAsync(30);
    await frames.push('b ');
    expect(s.sent).toEqual(['a ', 'b ']);
  });

  it('keeps the order when a frame is still being sent as the next one is due', async () => {
    const s = sink();
    const frames = new TokenFrames(s.send, new FrameClock(30));
    const release = s.holdNext();
    const first = frames.push('a ');
    await frames.push('b ').catch(() => undefined); // gathered
    await vi.advanceTimersByTimeAsync(30); // the timer's frame waits for the first send
    expect(s.sent).toEqual([]);
    release();
    await first;
    await frames.flush();
    expect(s.sent).toEqual(['a ', 'b ']);
  });

  it('throws a failed send from the next push and from flush, and sends nothing after it', async () => {
    const s = sink();
    const frames = new TokenFrames(s.send, new FrameClock(30));
    await frames.push('a ');
    await frames.push('b ');
    const lost = new Error('lease lost');
    s.fail(lost);
    await vi.advanceTimersByTimeAsync(30); // the gathered frame fails
    await expect(frames.push('c ')).rejects.toBe(lost);
    await expect(frames.flush()).rejects.toBe(lost);
    expect(s.sent).toEqual(['a ']);
  });

  it('a failure of a frame sent at once is thrown by that push', async () => {
    const s = sink();
    const frames = new TokenFrames(s.send, new FrameClock(30));
    const lost = new Error('lease lost');
    s.fail(lost);
    await expect(frames.push('a ')).rejects.toBe(lost);
  });

  it('discard drops what was gathered and resolves once a frame under way has left', async () => {
    const s = sink();
    const frames = new TokenFrames(s.send, new FrameClock(30));
    const release = s.holdNext();
    const first = frames.push('a ');
    await frames.push('b ');
    let discarded = false;
    const done = frames.discard().then(() => {
      discarded = true;
    });
    await vi.advanceTimersByTimeAsync(0);
    expect(discarded).toBe(false); // 'a ' is still being sent
    release();
    await Promise.all([first, done]);
    await vi.advanceTimersByTimeAsync(100);
    expect(s.sent).toEqual(['a ']);
  });

  it('answers on one clock send their gathered tokens at the same tick, none waiting longer than the interval', async () => {
    const ticks: number[] = [];
    const clock = new FrameClock(30, (n) => ticks.push(n));
    const a = sink();
    const b = sink();
    const fa = new TokenFrames(a.send, clock);
    const fb = new TokenFrames(b.send, clock);
    await fa.push('a1 '); // t=0: at once
    await vi.advanceTimersByTimeAsync(5);
    await fb.push('b1 '); // t=5: at once
    await vi.advanceTimersByTimeAsync(5);
    await fa.push('a2 '); // t=10: gathered; the clock's next tick is a's: t=30
    await vi.advanceTimersByTimeAsync(2);
    await fb.push('b2 '); // t=12: gathered for the same tick (b's own interval would end at t=35)
    expect(vi.getTimerCount()).toBe(1); // one timer for both answers
    await vi.advanceTimersByTimeAsync(17);
    expect([a.sent, b.sent]).toEqual([['a1 '], ['b1 ']]); // t=29
    vi.advanceTimersByTime(1); // t=30: the tick, and only the tick (no microtask has run yet)
    await Promise.resolve();
    await Promise.resolve();
    expect([a.sent, b.sent]).toEqual([
      ['a1 ', 'a2 '],
      ['b1 ', 'b2 '],
    ]);
    expect(vi.getTimerCount()).toBe(0); // nothing waits: no timer
    await fb.push('b3 '); // t=30, b's last frame just left: it sets the next tick, at t=60
    await vi.advanceTimersByTimeAsync(29);
    expect(b.sent).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(b.sent).toEqual(['b1 ', 'b2 ', 'b3 ']);
    expect(ticks).toEqual([2, 1]); // answers that left at each tick
  });

  it('an answer that stops waiting leaves the tick to the others, and the last one to stop takes the timer away', async () => {
    const clock = new FrameClock(30);
    const a = sink();
    const b = sink();
    const fa = new TokenFrames(a.send, clock);
    const fb = new TokenFrames(b.send, clock);
    await fa.push('a1 ');
    await fb.push('b1 ');
    await fa.push('a2 ');
    await fb.push('b2 ');
    await fa.flush(); // a's answer ends: its gathered token leaves now
    expect(a.sent).toEqual(['a1 ', 'a2 ']);
    expect(vi.getTimerCount()).toBe(1); // b still waits for the tick
    await fb.discard(); // b's turn stops: nothing waits any more
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(100);
    expect([a.sent, b.sent]).toEqual([['a1 ', 'a2 '], ['b1 ']]);
  });

  it('a waiter that throws at a tick does not keep the others from theirs', () => {
    const ticks: number[] = [];
    const clock = new FrameClock(30, (n) => ticks.push(n));
    const called: string[] = [];
    clock.atNextTick(() => called.push('a'), 10);
    clock.atNextTick(() => {
      throw new Error('bug');
    }, 10);
    clock.atNextTick(() => called.push('c'), 10);
    expect(() => vi.advanceTimersByTime(10)).toThrow('bug');
    expect(called).toEqual(['a', 'c']);
    expect(ticks).toEqual([3]);
    expect(vi.getTimerCount()).toBe(0);
  });
});
