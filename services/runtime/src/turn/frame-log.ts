/**
 * The frames a session's turns sent, numbered (`seq`), kept for clients that reconnect: they ask
 * for the frames after the last one they saw and get what they missed, then the live frames of a
 * turn still running, whichever instance runs it. In Redis (a stream per session, and a "turn
 * running" flag) when the runtime has one, so every instance sees every turn; in this process's
 * memory otherwise (the embedded single-process mode). Appends never block or fail a turn: a
 * frame the log could not keep only costs a reconnecting client that frame.
 */
import type { ChainableCommander, Redis } from 'ioredis';
import type { Logger } from 'pino';

export interface LoggedFrame {
  seq: number;
  /** The chunk's JSON, as sent. */
  data: string;
  final: boolean;
}

export interface FrameLog {
  append(sessionId: string, frame: LoggedFrame): void;
  /** Marks the session's turn as running (until `false`, or the flag's time-to-live). */
  setRunning(sessionId: string, running: boolean): void;
  isRunning(sessionId: string): Promise<boolean>;
  /** The highest seq kept for the session (0 when none). */
  lastSeq(sessionId: string): Promise<number>;
  /**
   * Frames after `after`, then the live frames while a turn runs; ends when no turn runs and
   * nothing is left, or when `signal` aborts.
   */
  follow(sessionId: string, after: number, signal: AbortSignal): AsyncGenerator<LoggedFrame>;
  close(): Promise<void>;
}

interface MemoryEntry {
  frames: LoggedFrame[];
  running: boolean;
  touched: number;
  waiters: Set<() => void>;
}

/** One process's log: bounded per session (`maxFrames`) and in sessions (least recently used go first). */
export class MemoryFrameLog implements FrameLog {
  private readonly sessions = new Map<string, MemoryEntry>();
  constructor(private readonly opts: { maxFrames: number; maxSessions?: number }) {}

  private entry(sessionId: string): MemoryEntry {
    let e = this.sessions.get(sessionId);
    if (e) {
      this.sessions.delete(sessionId); // re-insert: the map's order is least recently used first
    } else {
      e = { frames: [], running: false, touched: 0, waiters: new Set() };
      const max = this.opts.maxSessions ?? 10_000;
      for (const [id, old] of this.sessions) {
        if (this.sessions.size < max) break;
        if (!old.running) this.sessions.delete(id);
      }
    }
    e.touched = Date.now();
    this.sessions.set(sessionId, e);
    return e;
  }

  private wake(e: MemoryEntry): void {
    for (const w of [...e.waiters]) w();
  }

  append(sessionId: string, frame: LoggedFrame): void {
    const e = this.entry(sessionId);
    e.frames.push(frame);
    if (e.frames.length > this.opts.maxFrames) e.frames.splice(0, e.frames.length - this.opts.maxFrames);
    this.wake(e);
  }

  setRunning(sessionId: string, running: boolean): void {
    const e = this.entry(sessionId);
    e.running = running;
    this.wake(e);
  }

  async isRunning(sessionId: string): Promise<boolean> {
    return this.sessions.get(sessionId)?.running ?? false;
  }

  async lastSeq(sessionId: string): Promise<number> {
    return this.sessions.get(sessionId)?.frames.at(-1)?.seq ?? 0;
  }

  async *follow(sessionId: string, after: number, signal: AbortSignal): AsyncGenerator<LoggedFrame> {
    let last = after;
    for (;;) {
      const e = this.sessions.get(sessionId);
      const fresh = e ? e.frames.filter((f) => f.seq > last) : [];
      for (const f of fresh) {
        last = f.seq;
        yield f;
      }
      if (!e?.running || signal.aborted) return;
      await new Promise<void>((resolve) => {
        const done = (): void => {
          e.waiters.delete(done);
          signal.removeEventListener('abort', done);
          resolve();
        };
        e.waiters.add(done);
        signal.addEventListener('abort', done, { once: true });
      });
    }
  }

  async close(): Promise<void> {
    for (const e of this.sessions.values()) this.wake(e);
  }
}

const framesKey = (sessionId: string): string => `codelab:frames:${sessionId}`;
const runningKey = (sessionId: string): string => `codelab:turn-running:${sessionId}`;

/** The shared log: a Redis stream per session (trimmed to `maxFrames`, kept `retentionSeconds`). */
export class RedisFrameLog implements FrameLog {
  constructor(
    private readonly redis: Redis,
    private readonly opts: { maxFrames: number; retentionSeconds: number; runningTtlMs: number; logger: Logger; onError: () => void },
  ) {}

  private failed = (err: unknown): void => {
    this.opts.onError();
    this.opts.logger.warn({ err: { message: (err as Error).message } }, 'frame log write failed (reconnecting clients may miss frames)');
  };

  /** Commands of this event-loop turn, sent as one pipeline in order (frames before the flag that ends a turn). */
  private batch: ((p: ChainableCommander) => void)[] = [];
  private readonly touched = new Set<string>();

  private queue(cmd: (p: ChainableCommander) => void, key?: string): void {
    if (!this.batch.length) setImmediate(() => void this.flush());
    this.batch.push(cmd);
    if (key) this.touched.add(key);
  }

  private flush(): Promise<void> {
    if (!this.batch.length) return Promise.resolve();
    const p = this.redis.pipeline();
    for (const cmd of this.batch.splice(0)) cmd(p);
    for (const key of this.touched) p.expire(key, this.opts.retentionSeconds);
    this.touched.clear();
    return p
      .exec()
      .then((results) => {
        const failed = results?.find(([err]) => err)?.[0];
        if (failed) this.failed(failed);
      })
      .catch(this.failed);
  }

  append(sessionId: string, frame: LoggedFrame): void {
    const key = framesKey(sessionId);
    this.queue((p) => p.xadd(key, 'MAXLEN', '~', String(this.opts.maxFrames), '*', 'seq', String(frame.seq), 'data', frame.data, 'final', frame.final ? '1' : '0'), key);
  }

  setRunning(sessionId: string, running: boolean): void {
    const key = runningKey(sessionId);
    this.queue((p) => (running ? p.set(key, '1', 'PX', this.opts.runningTtlMs) : p.del(key)));
  }

  async isRunning(sessionId: string): Promise<boolean> {
    return (await this.redis.exists(runningKey(sessionId))) === 1;
  }

  async lastSeq(sessionId: string): Promise<number> {
    const [entry] = await this.redis.xrevrange(framesKey(sessionId), '+', '-', 'COUNT', 1);
    return entry ? Number(fieldsOf(entry[1]).seq ?? 0) : 0;
  }

  async *follow(sessionId: string, after: number, signal: AbortSignal): AsyncGenerator<LoggedFrame> {
    const key = framesKey(sessionId);
    let lastSeq = after;
    let lastId = '0-0';
    const take = function* (entries: [string, string[]][]): Generator<LoggedFrame> {
      for (const [id, raw] of entries) {
        lastId = id;
        const f = fieldsOf(raw);
        const seq = Number(f.seq);
        if (seq <= lastSeq) continue;
        lastSeq = seq;
        yield { seq, data: f.data ?? '', final: f.final === '1' };
      }
    };
    yield* take(await this.redis.xrange(key, '-', '+'));
    // Blocking reads need a connection of their own.
    const reader = this.redis.duplicate({ enableOfflineQueue: true });
    try {
      while (!signal.aborted) {
        const running = await this.isRunning(sessionId);
        const res = (await reader.xread('COUNT', 500, 'BLOCK', running ? 1000 : 1, 'STREAMS', key, lastId)) as [string, [string, string[]][]][] | null;
        if (res) yield* take(res[0]![1]);
        else if (!running) return;
      }
    } finally {
      reader.disconnect();
    }
  }

  async close(): Promise<void> {
    await this.flush();
  }
}

function fieldsOf(raw: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) out[raw[i]!] = raw[i + 1]!;
  return out;
}
