import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TokenFrames } from '../../src/turn/token-frames.ts';

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
    const frames = new TokenFrames(s.send, 0, s.onFrame);
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
    const frames = new TokenFrames(s.send, 30, s.onFrame);
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
    const frames = new TokenFrames(s.send, 30);
    await frames.push('a ');
    await vi.advanceTimersByTimeAsync(30);
    await frames.push('b ');
    expect(s.sent).toEqual(['a ', 'b ']);
  });

  it('keeps the order when a frame is still being sent as the next one is due', async () => {
    const s = sink();
    const frames = new TokenFrames(s.send, 30);
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
    const frames = new TokenFrames(s.send, 30);
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
    const frames = new TokenFrames(s.send, 30);
    const lost = new Error('lease lost');
    s.fail(lost);
    await expect(frames.push('a ')).rejects.toBe(lost);
  });

  it('discard drops what was gathered and resolves once a frame under way has left', async () => {
    const s = sink();
    const frames = new TokenFrames(s.send, 30);
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
});
