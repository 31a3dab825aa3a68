/**
 * The frames a session's turns sent, numbered (`seq`), kept for clients that reconnect: they ask
 * for the frames after the last one they saw and get what they missed, then the live frames of a
 * turn still running, whichever instance runs it. In Redis (a stream per session, and a "turn
 * running" flag) when the runtime has one, so every instance sees every turn; in this process's
 * memory otherwise (the embedded single-process mode). Appends never block or fail a turn: a
 * frame the log could not keep only costs a reconnecting client that frame.
 *
 * The running flag is a hint that lets a follower wait without asking the database; it expires
 * with the session lease (AGENT_RUNTIME__SESSION_LEASE_TTL) and is renewed with it. When it is
 * gone and the follower has not seen the end of a turn, `follow` asks its `settle` step
 * (interrupted-turns.ts), which reads the lease and closes a turn whose runtime died.
 *
 * Fencing: a turn appends with its lease's token (session-lease.ts), and whoever takes a session
 * over `claim`s its log with a greater token first; from then on the log refuses the frames (and
 * the running-flag changes) of the older lease, atomically, so that a turn which lost its lease
 * cannot add frames after the taker's even before it knows it lost.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { context, ROOT_CONTEXT } from '@opentelemetry/api';
import type { ChainableCommander, Redis } from 'ioredis';
import type { Logger } from 'pino';

export interface LoggedFrame {
  seq: number;
  /** The chunk's JSON, as sent. */
  data: string;
  final: boolean;
  /** Made up for one follower, not logged (settle's "frames lost" notice). */
  synthetic?: boolean;
}

/** Who appends: a lease's fencing token, and what to do when the log refuses a frame of it (a greater token claimed the log). */
export interface AppendFence {
  token: string;
  onRefused: () => void;
}

/** The last frame of a session's log: its number and whether it ended a turn. */
export interface LogTail {
  seq: number;
  final: boolean;
}

/**
 * What a follower does once no turn is flagged running and nothing new is logged, asked with the
 * log's last frame: `end` the follow, read the log `again` (a frame was just appended), `wait` a
 * little (a turn holds the session), or send one frame made up for it, then end.
 */
export type SettleVerdict = 'end' | 'again' | 'wait' | LoggedFrame;
export type Settle = (tail: LogTail | undefined) => Promise<SettleVerdict>;

export interface FrameLog {
  /** True when every instance sees this log (Redis); false for one process's memory. */
  readonly shared: boolean;
  /**
   * Keeps a frame. Resolves once it has left for the log (handed to the Redis connection, in the
   * batch of this event-loop turn), undefined when it is kept already (memory): a turn sends a
   * frame to its caller only after that, so the log never lags behind what a caller saw even when
   * the process dies the next instant. With a `fence`, the frame is refused (and `onRefused`
   * called: at once in memory, when Redis answers otherwise) when a greater token claimed the log.
   */
  append(sessionId: string, frame: LoggedFrame, fence?: AppendFence): Promise<void> | undefined;
  /**
   * Fences the session's log for the lease with `token`: once this resolves, fenced appends and
   * running-flag changes with a smaller token are refused. A smaller token than the log's is ignored.
   */
  claim(sessionId: string, token: string): Promise<void>;
  /**
   * Appends `frame` unless the log already ends at or past its seq, atomically: several
   * instances closing the same turn with the same frame keep it once. True when appended.
   */
  appendOnce(sessionId: string, frame: LoggedFrame): Promise<boolean>;
  /** Marks the session's turn as running (until `false`, or the flag's time-to-live); with `token`, only while no greater token claimed the log. */
  setRunning(sessionId: string, running: boolean, token?: string): void;
  isRunning(sessionId: string): Promise<boolean>;
  /** The session's last logged frame (undefined when none is kept). */
  tail(sessionId: string): Promise<LogTail | undefined>;
  /** Resolves once everything appended so far is written (before a turn gives its session up). */
  flush(): Promise<void>;
  /**
   * Frames after `after`, then the live frames while a turn runs; ends when no turn runs and
   * nothing is left (and `settle`, when given, says so), or when `signal` aborts.
   */
  follow(sessionId: string, after: number, signal: AbortSignal, settle?: Settle, pollMs?: number): AsyncGenerator<LoggedFrame>;
  close(): Promise<void>;
}

interface MemoryEntry {
  frames: LoggedFrame[];
  running: boolean;
  /** The greatest token that claimed the log. */
  claimed: bigint;
  touched: number;
  waiters: Set<() => void>;
}

/** One process's log: bounded per session (`maxFrames`) and in sessions (least recently used go first). */
export class MemoryFrameLog implements FrameLog {
  readonly shared = false;
  private readonly sessions = new Map<string, MemoryEntry>();
  private readonly opts: { maxFrames: number; maxSessions?: number };

  constructor(opts: { maxFrames: number; maxSessions?: number }) {
    this.opts = opts;
  }

  private entry(sessionId: string): MemoryEntry {
    let e = this.sessions.get(sessionId);
    if (e) {
      this.sessions.delete(sessionId); // re-insert: the map's order is least recently used first
    } else {
      e = { frames: [], running: false, claimed: -1n, touched: 0, waiters: new Set() };
      const max = this.opts.maxSessions ?? 10_000;
      for (const [id, old] of this.sessions) {
        if (this.sessions.size < max) break;
        if (!old.running && !old.waiters.size) this.sessions.delete(id);
      }
    }
    e.touched = Date.now();
    this.sessions.set(sessionId, e);
    return e;
  }

  private wake(e: MemoryEntry): void {
    for (const w of [...e.waiters]) w();
  }

  append(sessionId: string, frame: LoggedFrame, fence?: AppendFence): undefined {
    const e = this.entry(sessionId);
    if (fence && BigInt(fence.token) < e.claimed) {
      fence.onRefused();
      return;
    }
    e.frames.push(frame);
    if (e.frames.length > this.opts.maxFrames) e.frames.splice(0, e.frames.length - this.opts.maxFrames);
    this.wake(e);
  }

  async appendOnce(sessionId: string, frame: LoggedFrame): Promise<boolean> {
    const last = this.sessions.get(sessionId)?.frames.at(-1);
    if (last && last.seq >= frame.seq) return false;
    this.append(sessionId, frame);
    return true;
  }

  async claim(sessionId: string, token: string): Promise<void> {
    const e = this.entry(sessionId);
    if (BigInt(token) > e.claimed) e.claimed = BigInt(token);
  }

  setRunning(sessionId: string, running: boolean, token?: string): void {
    const e = this.entry(sessionId);
    if (token !== undefined && BigInt(token) < e.claimed) return;
    e.running = running;
    this.wake(e);
  }

  async isRunning(sessionId: string): Promise<boolean> {
    return this.sessions.get(sessionId)?.running ?? false;
  }

  async tail(sessionId: string): Promise<LogTail | undefined> {
    const last = this.sessions.get(sessionId)?.frames.at(-1);
    return last ? { seq: last.seq, final: last.final } : undefined;
  }

  async flush(): Promise<void> {}

  async *follow(sessionId: string, after: number, signal: AbortSignal, settle?: Settle, pollMs = 1000): AsyncGenerator<LoggedFrame> {
    let last = after;
    let lastYielded: LoggedFrame | undefined;
    for (;;) {
      const e = this.sessions.get(sessionId);
      const fresh = e ? e.frames.filter((f) => f.seq > last) : [];
      for (const f of fresh) {
        last = f.seq;
        lastYielded = f;
        yield f;
      }
      if (signal.aborted) return;
      // frames appended while the follower was busy with these woke no one: read again first
      if (fresh.length) continue;
      if (e?.running) {
        await this.wait(sessionId, signal);
        continue;
      }
      // no turn runs here: done once the follower has seen a turn end, else ask settle
      if (!settle || lastYielded?.final) return;
      const tail = e?.frames.at(-1);
      const verdict = await settle(tail && { seq: tail.seq, final: tail.final });
      if (verdict === 'end') return;
      if (verdict === 'wait') await this.wait(sessionId, signal, pollMs);
      else if (typeof verdict === 'object') {
        if (verdict.seq > last) yield verdict;
        return;
      }
    }
  }

  /** Until something is appended or flagged, `signal` aborts, or `ms` passed (none: no limit). */
  private wait(sessionId: string, signal: AbortSignal, ms?: number): Promise<void> {
    const e = this.entry(sessionId);
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        e.waiters.delete(done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = ms === undefined ? undefined : setTimeout(done, ms);
      e.waiters.add(done);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  async close(): Promise<void> {
    for (const e of this.sessions.values()) this.wake(e);
  }
}

const framesKey = (sessionId: string): string => `codelab:frames:${sessionId}`;
const runningKey = (sessionId: string): string => `codelab:turn-running:${sessionId}`;
const claimKey = (sessionId: string): string => `codelab:frames-claim:${sessionId}`;

/**
 * Raises the log's claim to a token (never lowers it). KEYS[1] the claim; ARGV: token, retention
 * seconds. Tokens are compared as numbers (transaction ids: below 2^53 for ages).
 */
const CLAIM = `
local cur = redis.call('GET', KEYS[1])
if cur and tonumber(cur) >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
`;

/** XADD (and the stream's retention) unless a greater token claimed the log. KEYS: the stream, the claim; ARGV: token, seq, data, final flag, max length, retention seconds. */
const FENCED_APPEND = `
local cur = redis.call('GET', KEYS[2])
if cur and tonumber(cur) > tonumber(ARGV[1]) then return 0 end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[5], '*', 'seq', ARGV[2], 'data', ARGV[3], 'final', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[6])
return 1
`;

/** Sets (ARGV[2] = '1', for ARGV[3] ms) or clears the running flag unless a greater token claimed the log. KEYS: the flag, the claim; ARGV[1] the token. */
const FENCED_RUNNING = `
local cur = redis.call('GET', KEYS[2])
if cur and tonumber(cur) > tonumber(ARGV[1]) then return 0 end
if ARGV[2] == '1' then redis.call('SET', KEYS[1], '1', 'PX', ARGV[3]) else redis.call('DEL', KEYS[1]) end
return 1
`;

/** The scripts as pipeline commands (ioredis sends EVALSHA, and the script itself the first time on a connection). */
interface FencedCommands {
  codelabFencedAppend(...args: string[]): unknown;
  codelabFencedRunning(...args: string[]): unknown;
  codelabAppendOnce(...args: string[]): unknown;
  codelabClaim(...args: string[]): unknown;
}

/**
 * Appends a frame unless the stream's last entry already has this seq or a greater one: one
 * atomic step, so that every instance closing the same turn with the same frame adds it once.
 * KEYS[1] the stream; ARGV: seq, data, final flag, max length, retention seconds.
 */
const APPEND_ONCE = `
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last > 0 then
  local f = last[1][2]
  for i = 1, #f, 2 do
    if f[i] == 'seq' and tonumber(f[i + 1]) >= tonumber(ARGV[1]) then return 0 end
  end
end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*', 'seq', ARGV[1], 'data', ARGV[2], 'final', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
`;

/** The shared log: a Redis stream per session (trimmed to `maxFrames`, kept `retentionSeconds`). */
export class RedisFrameLog implements FrameLog {
  readonly shared = true;
  private readonly redis: Redis;
  private readonly opts: RedisFrameLogOptions;

  constructor(redis: Redis, opts: RedisFrameLogOptions) {
    this.redis = redis;
    this.opts = opts;
    redis.defineCommand('codelabFencedAppend', { numberOfKeys: 2, lua: FENCED_APPEND });
    redis.defineCommand('codelabFencedRunning', { numberOfKeys: 2, lua: FENCED_RUNNING });
    redis.defineCommand('codelabAppendOnce', { numberOfKeys: 1, lua: APPEND_ONCE });
    redis.defineCommand('codelabClaim', { numberOfKeys: 1, lua: CLAIM });
  }

  private failed = (err: unknown): void => {
    this.opts.onError();
    this.opts.logger.warn({ err: { message: (err as Error).message } }, 'frame log write failed (reconnecting clients may miss frames)');
  };

  /**
   * Commands of this event-loop turn, sent as one pipeline in order (frames before the flag that
   * ends a turn). Each adds exactly one command; `onReply` gets its reply. A command with `onError`
   * is a caller's (`ask`): its failure is the caller's to handle; the others' failures are counted
   * and logged here (a frame the log could not keep).
   */
  private batch: { cmd: (p: ChainableCommander) => void; onReply?: (reply: unknown) => void; onError?: (err: Error) => void }[] = [];
  private readonly touched = new Set<string>();
  /** The last pipeline sent: Redis answers pipelines in order, so it settles after every earlier one. */
  private sent: Promise<void> = Promise.resolve();

  /** Resolves once the current batch was handed to the connection. */
  private handedOff: Promise<void> = Promise.resolve();

  private queue(
    cmd: (p: ChainableCommander) => void,
    key?: string,
    onReply?: (reply: unknown) => void,
    onError?: (err: Error) => void,
  ): Promise<void> {
    if (!this.batch.length) {
      this.handedOff = new Promise<void>((resolve) =>
        setImmediate(() => {
          void this.flush();
          resolve();
        }),
      );
    }
    this.batch.push(onError ? { cmd, onReply, onError } : onReply ? { cmd, onReply } : { cmd });
    if (key) this.touched.add(key);
    return this.handedOff;
  }

  /**
   * A command whose reply the caller waits for, in the pipeline of this event-loop turn: a turn's
   * first steps (`claim`, `tail`) and its last (`appendOnce`) share one socket write, and Redis one
   * read, with the frames and flags of every other turn at that moment, instead of a round trip each.
   */
  private ask<T>(cmd: (p: ChainableCommander) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      void this.queue(cmd, undefined, (reply) => resolve(reply as T), reject);
    });
  }

  flush(): Promise<void> {
    if (!this.batch.length) return this.sent;
    const p = this.redis.pipeline();
    const batch = this.batch.splice(0);
    for (const { cmd } of batch) cmd(p);
    for (const key of this.touched) p.expire(key, this.opts.retentionSeconds);
    this.touched.clear();
    // Outside any trace: the batch carries frames (tokens) of many turns; a span per command
    // would be a span per token (the kit traces a command only inside a span of a sampled trace: redis-spans.ts).
    this.sent = context
      .with(ROOT_CONTEXT, () => p.exec())
      .then((results) => {
        let failed: Error | undefined;
        batch.forEach(({ onReply, onError }, i) => {
          const [err, reply] = results?.[i] ?? [new Error('Redis answered no reply to the command')];
          if (!err) onReply?.(reply);
          else if (onError) onError(err);
          else failed ??= err;
        });
        if (failed) this.failed(failed);
      })
      .catch((err: Error) => {
        let counted = false;
        for (const { onError } of batch) {
          if (onError) onError(err);
          else counted = true;
        }
        if (counted) this.failed(err);
      });
    return this.sent;
  }

  append(sessionId: string, frame: LoggedFrame, fence?: AppendFence): Promise<void> {
    const key = framesKey(sessionId);
    const [seq, final, maxLen] = [String(frame.seq), frame.final ? '1' : '0', String(this.opts.maxFrames)];
    if (!fence) return this.queue((p) => p.xadd(key, 'MAXLEN', '~', maxLen, '*', 'seq', seq, 'data', frame.data, 'final', final), key);
    // (the script sets the stream's retention itself: no EXPIRE command per frame)
    return this.queue(
      (p) =>
        (p as unknown as FencedCommands).codelabFencedAppend(
          key,
          claimKey(sessionId),
          fence.token,
          seq,
          frame.data,
          final,
          maxLen,
          String(this.opts.retentionSeconds),
        ),
      undefined,
      (reply) => {
        if (reply === 0) fence.onRefused();
      },
    );
  }

  async claim(sessionId: string, token: string): Promise<void> {
    await this.ask((p) => (p as unknown as FencedCommands).codelabClaim(claimKey(sessionId), token, String(this.opts.retentionSeconds)));
  }

  async appendOnce(sessionId: string, frame: LoggedFrame): Promise<boolean> {
    // in order after what this instance appended before: the same connection, a later pipeline or later in this one
    const added = await this.ask((p) =>
      (p as unknown as FencedCommands).codelabAppendOnce(
        framesKey(sessionId),
        String(frame.seq),
        frame.data,
        frame.final ? '1' : '0',
        String(this.opts.maxFrames),
        String(this.opts.retentionSeconds),
      ),
    );
    return added === 1;
  }

  setRunning(sessionId: string, running: boolean, token?: string): void {
    const key = runningKey(sessionId);
    const ttl = String(this.opts.runningTtlMs);
    if (token === undefined) void this.queue((p) => (running ? p.set(key, '1', 'PX', ttl) : p.del(key)));
    else
      void this.queue((p) =>
        (p as unknown as FencedCommands).codelabFencedRunning(key, claimKey(sessionId), token, running ? '1' : '0', ttl),
      );
  }

  async isRunning(sessionId: string): Promise<boolean> {
    return (await this.redis.exists(runningKey(sessionId))) === 1;
  }

  async tail(sessionId: string): Promise<LogTail | undefined> {
    const [entry] = await this.ask<[string, string[]][]>((p) => p.xrevrange(framesKey(sessionId), '+', '-', 'COUNT', 1));
    if (!entry) return undefined;
    const f = fieldsOf(entry[1]);
    return { seq: Number(f.seq ?? 0), final: f.final === '1' };
  }

  async *follow(sessionId: string, after: number, signal: AbortSignal, settle?: Settle, pollMs = 1000): AsyncGenerator<LoggedFrame> {
    const key = framesKey(sessionId);
    let lastSeq = after;
    let lastId = '0-0';
    let tail: LogTail | undefined;
    let lastYielded: LoggedFrame | undefined;
    const take = function* (entries: [string, string[]][]): Generator<LoggedFrame> {
      for (const [id, raw] of entries) {
        lastId = id;
        const f = fieldsOf(raw);
        const seq = Number(f.seq);
        tail = { seq, final: f.final === '1' };
        if (seq <= lastSeq) continue;
        lastSeq = seq;
        lastYielded = { seq, data: f.data ?? '', final: f.final === '1' };
        yield lastYielded;
      }
    };
    type Read = [string, [string, string[]][]][] | null;
    yield* take(await this.redis.xrange(key, '-', '+'));
    // Blocking reads need a connection of their own.
    let reader: Redis | undefined;
    const blockingRead = async (ms: number): Promise<Read> => {
      reader ??= this.redis.duplicate({ enableOfflineQueue: true });
      return (await reader.xread('COUNT', 500, 'BLOCK', ms, 'STREAMS', key, lastId)) as Read;
    };
    try {
      const blockMs = this.opts.followBlockMs ?? 1000;
      let caughtUpWait = CAUGHT_UP_FIRST_WAIT_MS;
      while (!signal.aborted) {
        if (await this.isRunning(sessionId)) {
          let res: Read;
          if (tail?.final) {
            // the log ends with a turn's final frame: the flag is most likely that turn's, cleared
            // right after its last commit, so look at it again soon, then less and less often (a
            // next turn may have started), instead of blocking a whole read: a reconnecting
            // client's replay, which holds its next message, would end that much later. Waited
            // here: Redis ends a short blocking read only at its timer's tick (hz 10: 100 ms).
            await sleep(caughtUpWait, undefined, { signal }).catch(() => undefined);
            caughtUpWait = Math.min(caughtUpWait * 2, CAUGHT_UP_MAX_WAIT_MS);
            res = (await this.redis.xread('COUNT', 500, 'STREAMS', key, lastId)) as Read;
          } else res = await blockingRead(blockMs);
          if (res) {
            caughtUpWait = CAUGHT_UP_FIRST_WAIT_MS;
            yield* take(res[0]![1]);
          }
          continue;
        }
        // not flagged running: what came meanwhile, then done once the follower saw a turn end
        const res = (await this.redis.xread('COUNT', 500, 'STREAMS', key, lastId)) as Read;
        if (res) {
          yield* take(res[0]![1]);
          continue;
        }
        if (!settle || lastYielded?.final) return;
        const verdict = await settle(tail);
        if (verdict === 'end') return;
        if (verdict === 'wait') {
          const more = await blockingRead(pollMs);
          if (more) yield* take(more[0]![1]);
        } else if (typeof verdict === 'object') {
          if (verdict.seq > lastSeq) yield verdict;
          return;
        }
      }
    } finally {
      reader?.disconnect();
    }
  }

  async close(): Promise<void> {
    await this.flush();
  }
}

export interface RedisFrameLogOptions {
  maxFrames: number;
  retentionSeconds: number;
  runningTtlMs: number;
  logger: Logger;
  onError: () => void;
  /** How long a follower's blocking read waits for a running turn's next frame before it looks at the flag again (default 1000 ms). */
  followBlockMs?: number;
}

/** How long a follower waits before it looks again when the log ends with a final frame while the flag still says running: doubling from the first to the longest wait. */
const CAUGHT_UP_FIRST_WAIT_MS = 2;
const CAUGHT_UP_MAX_WAIT_MS = 100;

function fieldsOf(raw: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) out[raw[i]!] = raw[i + 1]!;
  return out;
}
