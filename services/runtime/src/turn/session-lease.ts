/**
 * One turn at a time per session, across every runtime instance: a lease on the session row,
 * taken by a conditional UPDATE (free, or expired), renewed while the turn runs, released at its
 * end. A crashed instance's lease runs out after `ttlMs`. It needs nothing but the database, so
 * it works on a shared PostgreSQL and on the embedded engine alike. Waiters on this instance are
 * woken at once by a release; others poll with back-off.
 *
 * The lease is also what tells that a turn's runtime died: a turn's lease names it (`…:turn:<seq
 * before the turn>`), and a turn lease that lapsed was never released, so its turn never ended.
 * Whoever finds it first closes that turn (interrupted-turns.ts): the next lease taker of the
 * session (`onTakeover`), or a client following the session (`inspect` + `settleLapsed`). The
 * row keeps the outcome until the next lease: owner NULL with a `lease_until` means "the last turn
 * was closed as interrupted, its final frame is `frame_seq`".
 *
 * `frame_seq` is the number of the session's last frame. With `reserveSeqs` (no shared frame log:
 * the log dies with its process) a turn reserves its numbers in the row before using them, so a
 * turn whose runtime died never has its numbers given out again.
 *
 * A holder that stops renewing (paused, cut from the database) may find its lease taken over.
 * It must then write nothing more, so every write of a turn is fenced: `fence` locks the row in
 * the write's transaction only while the lease is still this one (a takeover waits for the write
 * to commit), and `token` (the acquiring transaction's id, greater for every later lease) lets the
 * frame log refuse the frames of an older lease (frame-log.ts `claim`).
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Database, Queryable } from '@codelab/service-kit';
import type { RuntimeMetrics } from '../metrics.ts';
import { applyEdits, MESSAGE_COLUMNS, SESSION_EDITS, type HistoryRow, type StoredMessage } from '../store/sessions.ts';
import type { HistoryCache } from './history-cache.ts';
import { OPEN_STATUSES } from '../store/tool-calls.ts';

const OPEN_LIST = OPEN_STATUSES.map((s) => `'${s}'`).join(', ');

export interface LeasedSession {
  current_agent: string;
  /**
   * The history the turn's first LLM call sends, the user message the lease's statement stored
   * last: read by that statement when it is current (`historyAfterTake`); absent otherwise, and the
   * call reads it.
   */
  history?: StoredMessage[];
  /** The session's last frame number before this lease (after closing an interrupted turn). */
  frame_seq: number;
  /** Tool calls still waiting for the IDE or a human. */
  open_tool_calls: number;
  /** The turn's user message was stored in the statement that took the lease (`TakeOptions.userMessage`). */
  message_stored: boolean;
}

/** What a lease is taken for. */
export interface TakeOptions {
  /** A turn's lease (named after the session's frame number before it). */
  turn?: boolean;
  /**
   * A user message the turn stores in the same statement that takes the lease (one commit), when
   * no tool call waits for an answer (those are answered as superseded before it: conversation.ts).
   */
  userMessage?: string | undefined;
}

export class SessionBusyError extends Error {}

/** The session lease was taken over (its renewals failed for a whole TTL): its turn stops and writes nothing more. */
export class LeaseLostError extends Error {
  constructor() {
    super('the session lease was taken over');
  }
}

export interface Lease {
  readonly session: LeasedSession;
  /**
   * The lease's fencing token: the id of the transaction that took it, greater than the token of
   * every lease of the session before it (decimal digits).
   */
  readonly token: string;
  /** False once the lease was found taken over (by a renewal, `fence`, or `lose`): the turn writes nothing more. */
  readonly held: boolean;
  /** Aborted (with a LeaseLostError) when the lease is found taken over. */
  readonly lost: AbortSignal;
  /**
   * In a write's transaction: locks the session row if this lease still holds it, so that a
   * takeover waits for the write to commit; LeaseLostError (and the lease is lost) when it does not.
   */
  fence(tx: Queryable): Promise<void>;
  /**
   * The same condition for a write that carries it itself (one statement, no transaction: store/sessions.ts
   * `WriteFence`): the row is still this lease's while `lease_owner = owners[0] OR lease_owner LIKE owners[1]`.
   */
  readonly owners: readonly [string, string];
  /** Something else found the lease taken over (the frame log refused a frame of it). */
  lose(): void;
  /** Makes sure frame number `seq` is reserved in the row before it is used; undefined when it is. LeaseLostError when the row is someone else's. */
  ensureSeq(seq: number): Promise<void> | undefined;
  /** The session's last frame number before this turn is `seq` (the log was ahead of the row): the lease is renamed after it. */
  rebase(seq: number): Promise<void>;
  /** Frees the session; `frameSeq` (the turn's last frame number) is saved in the same statement. */
  release(frameSeq?: number): Promise<void>;
  /** The frame number a release with the turn's last frame `frameSeq` saves. */
  releaseSeq(frameSeq: number): number;
  /**
   * The turn's own last commit freed the session (store/sessions.ts `append` with an end): renewals
   * stop, waiters wake, the lease is never found lost any more and `release` does nothing.
   */
  released(): void;
}

/** A lapsed turn lease the taker found: the turn it names never ended. */
export interface TakenOver {
  /** The row's frame_seq then (the dead turn's first number minus one, or its reservation). */
  frameSeq: number;
  /** The dead turn's number before its first frame. */
  turnBase: number;
  /** The turn was already closed as interrupted (by a follower): its final frame is `frameSeq`. */
  alreadyClosed: boolean;
  /** The taker's fencing token (greater than the dead turn's). */
  token: string;
}

/** What a follower sees of a session's lease. */
export interface LeaseState {
  owner: string | null;
  /** A turn holds the lease, alive (renewed) or lapsed (its runtime stopped). */
  turn: { lapsed: boolean; base: number } | undefined;
  /** No lease; the last turn was closed as interrupted, with frame `frameSeq`. */
  closedInterrupted: boolean;
  frameSeq: number;
}

const TURN_OWNER = /:turn:(\d+)$/;

/**
 * A row of the statement that takes a lease: the lease's columns, and with a user message one of
 * the session's messages it read (MESSAGE_COLUMNS, and the session's edits on every row; a row
 * without a message when it read none).
 */
type TakeRow = {
  owner: string;
  current_agent: string;
  frame_seq: string;
  prev_owner: string | null;
  closed_interrupted: boolean;
  open_tool_calls: string;
  stored: boolean;
  token: string;
  message_count: number;
  message_created_at: Date | null;
  snapshot_frame_seq: string | null;
} & Partial<HistoryRow>;

/**
 * The history the lease's statement read, with the user message it stored last; undefined when it
 * may not be current. The statement reads messages as they were when it started, but locks the
 * session row as it is when the lock comes free: a turn that ended while the statement waited for
 * the lock (its answer, its edits, its release) is in the row, not in what the statement read.
 * The row's frame number changes with every turn that ends, so the read is current when the frame
 * number it saw (`snapshot_frame_seq`) is the locked row's, no lapsed turn was taken over, and the
 * messages it read are all but the one it stored.
 *
 * `kept`: the session's messages 1..n this runtime kept from its last turn (history-cache.ts); the
 * statement then read only message n (the last kept: still the same message, by its id, or nothing
 * kept is used: a database restored under a running runtime, say) and the ones after it. `rows` of
 * the answer: messages 1..the stored one, without edits (for the cache); `history`: the same with
 * the session's edits applied.
 */
export function historyAfterTake(
  rows: readonly TakeRow[],
  stored: { id: string; content: string; createdAt: Date },
  kept: readonly HistoryRow[] = [],
): { history: StoredMessage[]; rows: HistoryRow[]; read: HistoryRow[] } | undefined {
  const first = rows[0];
  if (!first || first.prev_owner !== null || first.snapshot_frame_seq !== first.frame_seq) return undefined;
  const read: HistoryRow[] = [];
  for (const r of rows) if (r.id != null) read.push(messageOf(r as TakeRow & HistoryRow));
  const last = kept.at(-1);
  if (last) {
    if (read[0]?.seq !== last.seq || read[0].id !== last.id) return undefined;
    read.shift();
  }
  // numbers run without gaps: the read continues the kept ones and ends just before the stored message
  if (kept.length + read.length !== first.message_count - 1) return undefined;
  if (read.length > 0 && (read[0]!.seq !== kept.length + 1 || read.at(-1)!.seq !== first.message_count - 1)) return undefined;
  const message: HistoryRow = {
    id: stored.id,
    seq: first.message_count,
    role: 'user',
    content: stored.content,
    name: null,
    tool_call_id: null,
    tool_calls: null,
    token_count: null,
    created_at: stored.createdAt,
    edits: null,
  };
  read.push(message);
  const all = kept.length ? [...kept, ...read] : read;
  return { history: applyEdits(all as StoredMessage[], first.edits ?? []), rows: all, read };
}

/** A row's message: the message's columns only (edits are the session's, applied to the whole history). */
function messageOf(row: TakeRow & HistoryRow): HistoryRow {
  return {
    id: row.id,
    seq: row.seq,
    role: row.role,
    content: row.content,
    name: row.name,
    tool_call_id: row.tool_call_id,
    tool_calls: row.tool_calls,
    token_count: row.token_count,
    created_at: row.created_at,
    edits: null,
  };
}

interface Taken {
  owner: string;
  token: string;
  session: LeasedSession;
  /** The highest frame number the row reserves for the lease. */
  reserved: number;
  /** The frame number after closing the turn whose lapsed lease this one took over. */
  rebase?: number;
}

export interface SessionLeasesOptions {
  ttlMs: number;
  metrics: RuntimeMetrics;
  /** A lease was renewed (with its fencing token). */
  onRenew?: (sessionId: string, token: string) => void;
  /** Frame numbers a turn reserves at a time (0: none, the frame log is shared and kept). */
  reserveSeqs?: number;
  /** A lapsed turn lease was taken over: close its turn; answers the session's frame number after it. */
  onTakeover?: (sessionId: string, prev: TakenOver) => Promise<number>;
  /** The sessions' histories kept between turns: the statement reads only the messages after them. */
  historyCache?: HistoryCache;
}

export class SessionLeases {
  /**
   * Names this process in `lease_owner`: its host (a container's id under Docker, a pod's name
   * under Kubernetes) and a random part, so that an operator, or the fault suite, can tell which
   * instance holds a session (`SELECT lease_owner FROM sessions WHERE id = …`).
   */
  readonly instance = `${hostname().replace(/:/g, '-')}-${randomUUID().slice(0, 8)}`;
  private readonly wakers = new Map<string, Set<() => void>>();
  private readonly db: Database;
  private readonly opts: SessionLeasesOptions;

  constructor(db: Database, opts: SessionLeasesOptions) {
    this.db = db;
    this.opts = opts;
  }

  /**
   * One attempt: the session's lease if it is free (and the caller's, when a caller is given). A
   * turn's lease is named after the session's frame number before it (`<owner>:turn:<seq>`). With
   * `userMessage`, the same statement stores it as the session's next message (as store/sessions.ts
   * `append` would) unless a tool call still waits for an answer.
   */
  private async tryTake(sessionId: string, owner: string, opts: TakeOptions, caller?: string): Promise<Taken | undefined> {
    const turn = opts.turn === true;
    const reserve = turn ? (this.opts.reserveSeqs ?? 0) : 0;
    const text = opts.userMessage;
    const messageId = randomUUID();
    // The CTE locks the free row and reads what the lease was (RETURNING shows only new values).
    // With a user message it also reads the session's history for the turn's first LLM call: the
    // messages after those this runtime kept from the session's last turn (all of them when none),
    // a row per message (the lease's columns and the session's edits on each; one row with no
    // message when there is none to read). The last kept message is read again, to check it is the same.
    const kept = text === undefined ? [] : (this.opts.historyCache?.get(sessionId) ?? []);
    const { rows } = await this.db.query<TakeRow>(
      `WITH prev AS (
         SELECT id, lease_owner, lease_until, frame_seq FROM sessions
         WHERE id = $1 AND deleted_at IS NULL AND ($4::text IS NULL OR owner_sub = $4) AND (lease_owner IS NULL OR lease_until < now())
         FOR UPDATE
       ),
       open AS (SELECT count(*) AS n FROM tool_calls WHERE session_id = $1 AND status IN (${OPEN_LIST})),
       taken AS (
         UPDATE sessions s SET lease_owner = $2 || CASE WHEN $6::boolean THEN ':turn:' || prev.frame_seq ELSE '' END,
           lease_until = now() + $3 * interval '1 millisecond', frame_seq = s.frame_seq + $5,
           message_count = s.message_count + m.add,
           last_activity = CASE WHEN m.add = 1 THEN now() ELSE s.last_activity END,
           title = CASE WHEN m.add = 1 THEN COALESCE(s.title, $9) ELSE s.title END
         FROM prev, (SELECT CASE WHEN $7::text IS NOT NULL AND (SELECT n FROM open) = 0 THEN 1 ELSE 0 END AS add) m
         WHERE s.id = prev.id AND (s.lease_owner IS NULL OR s.lease_until < now())
         RETURNING s.lease_owner AS owner, s.current_agent, prev.frame_seq, prev.lease_owner AS prev_owner,
           (prev.lease_owner IS NULL AND prev.lease_until IS NOT NULL) AS closed_interrupted,
           s.message_count, m.add, txid_current()::text AS token
       ),
       msg AS (
         INSERT INTO messages (id, session_id, seq, role, content)
         SELECT $8, $1, taken.message_count, 'user', $7 FROM taken WHERE taken.add = 1
         RETURNING created_at
       )${
         text === undefined
           ? `
       SELECT taken.owner, taken.current_agent, taken.frame_seq, taken.prev_owner, taken.closed_interrupted, taken.token,
         (SELECT n FROM open) AS open_tool_calls, EXISTS (SELECT 1 FROM msg) AS stored
       FROM taken`
           : `,
       history AS (SELECT ${MESSAGE_COLUMNS} FROM messages WHERE session_id = $1 AND seq >= $10)
       SELECT taken.owner, taken.current_agent, taken.frame_seq, taken.prev_owner, taken.closed_interrupted, taken.token,
         (SELECT n FROM open) AS open_tool_calls, EXISTS (SELECT 1 FROM msg) AS stored, taken.message_count,
         (SELECT created_at FROM msg) AS message_created_at,
         (SELECT frame_seq FROM sessions WHERE id = $1) AS snapshot_frame_seq, ${SESSION_EDITS} AS edits, history.*
       FROM taken LEFT JOIN history ON true
       ORDER BY history.seq`
       }`,
      [
        sessionId,
        owner,
        this.opts.ttlMs,
        caller ?? null,
        reserve,
        turn,
        text ?? null,
        messageId,
        text ? text.trim().slice(0, 500) : null,
        ...(text === undefined ? [] : [kept.length]),
      ],
    );
    const row = rows[0];
    if (!row) return undefined;
    const taken: Taken = {
      owner: row.owner,
      token: row.token,
      session: {
        current_agent: row.current_agent,
        frame_seq: Number(row.frame_seq),
        open_tool_calls: Number(row.open_tool_calls),
        message_stored: row.stored,
      },
      reserved: Number(row.frame_seq) + reserve,
    };
    if (text !== undefined && row.stored && row.message_created_at) {
      const read = historyAfterTake(rows, { id: messageId, content: text, createdAt: row.message_created_at }, kept);
      const cache = this.opts.historyCache;
      if (read) {
        taken.session.history = read.history;
        cache?.keep(sessionId, read.rows, read.read);
      } else cache?.forget(sessionId);
      this.opts.metrics.historyReads.inc({ read: !read ? 'not_current' : kept.length ? 'after_kept' : 'whole' });
    }
    const dead = row.prev_owner ? TURN_OWNER.exec(row.prev_owner) : null;
    if ((dead || row.closed_interrupted) && this.opts.onTakeover) {
      const prev: TakenOver = {
        frameSeq: taken.session.frame_seq,
        turnBase: dead ? Number(dead[1]) : taken.session.frame_seq,
        alreadyClosed: !dead,
        token: taken.token,
      };
      taken.rebase = await this.opts.onTakeover(sessionId, prev);
    }
    return taken;
  }

  private newOwner(): string {
    return `${this.instance}:${randomUUID().slice(0, 8)}`;
  }

  /**
   * The fast path of a turn: one statement takes the lease of an existing, free session of the
   * caller. Undefined when the session is missing, someone else's or busy (then `acquire`).
   */
  async tryAcquire(sessionId: string, caller?: string, opts: TakeOptions = {}): Promise<Lease | undefined> {
    const taken = await this.tryTake(sessionId, this.newOwner(), opts, caller);
    if (!taken) return undefined;
    this.opts.metrics.sessionLockWait.observe(0);
    return this.hold(sessionId, taken);
  }

  /** Waits up to `timeoutMs` for the session; SessionBusyError when another turn keeps it. */
  async acquire(sessionId: string, timeoutMs: number, opts: TakeOptions & { signal?: AbortSignal } = {}): Promise<Lease> {
    const owner = this.newOwner();
    const started = performance.now();
    let delay = 5;
    for (;;) {
      const taken = await this.tryTake(sessionId, owner, opts);
      if (taken) {
        this.opts.metrics.sessionLockWait.observe((performance.now() - started) / 1000);
        return this.hold(sessionId, taken);
      }
      const left = timeoutMs - (performance.now() - started);
      if (left <= 0 || opts.signal?.aborted) {
        this.opts.metrics.sessionLockTimeouts.inc();
        throw new SessionBusyError(`another turn of session ${sessionId} is still running`);
      }
      await new Promise<void>((resolve) => {
        const set = this.wakers.get(sessionId) ?? new Set();
        this.wakers.set(sessionId, set);
        const done = (): void => {
          clearTimeout(timer);
          set.delete(done);
          if (!set.size) this.wakers.delete(sessionId);
          resolve();
        };
        const timer = setTimeout(done, Math.min(delay, left));
        set.add(done);
      });
      delay = Math.min(delay * 2, 250);
    }
  }

  private async hold(sessionId: string, taken: Taken): Promise<Lease> {
    const lease = this.holding(sessionId, taken);
    if (taken.rebase !== undefined) await lease.rebase(taken.rebase);
    return lease;
  }

  private holding(sessionId: string, taken: Taken): Lease {
    const { session } = taken;
    let owner = taken.owner;
    // a rename (rebase) changes only the `:turn:<seq>` suffix: a fence matches what comes before it
    const identity = owner.replace(TURN_OWNER, '');
    const owners = [identity, `${identity}:turn:%`] as const;
    let held = true;
    let ended = false;
    let reserved = this.opts.reserveSeqs ? taken.reserved : Number.POSITIVE_INFINITY;
    const lost = new AbortController();
    const lose = (): void => {
      if (!held || ended) return;
      held = false;
      clearInterval(renew);
      lost.abort(new LeaseLostError());
    };
    // a rename (rebase) changes the owner: renewals wait for it, and one sent before it is not a loss
    let renamed = 0;
    let renaming: Promise<unknown> | undefined;
    const renew = setInterval(
      () => {
        void (async () => {
          await renaming;
          const [as, generation] = [owner, renamed];
          const r = await this.db.query(
            `UPDATE sessions SET lease_until = now() + $3 * interval '1 millisecond' WHERE id = $1 AND lease_owner = $2`,
            [sessionId, as, this.opts.ttlMs],
          );
          if (r.rowCount) this.opts.onRenew?.(sessionId, taken.token);
          else if (generation === renamed && !renaming) lose();
        })().catch(() => undefined); // a failed renewal is retried at the next tick; the TTL covers a few
      },
      Math.max(50, this.opts.ttlMs / 3),
    );
    renew.unref();
    const lease: Lease = {
      session,
      token: taken.token,
      get held() {
        return held;
      },
      lost: lost.signal,
      owners,
      fence: async (tx) => {
        if (!held) throw new LeaseLostError();
        const r = await tx.query(`SELECT 1 FROM sessions WHERE id = $1 AND (lease_owner = $2 OR lease_owner LIKE $3) FOR UPDATE`, [
          sessionId,
          ...owners,
        ]);
        if (!r.rowCount) {
          lose();
          throw new LeaseLostError();
        }
      },
      lose,
      ensureSeq: (seq) => {
        if (seq <= reserved) return undefined;
        const upTo = seq - 1 + (this.opts.reserveSeqs ?? 1);
        return this.db
          .query(`UPDATE sessions SET frame_seq = GREATEST(frame_seq, $3) WHERE id = $1 AND lease_owner = $2`, [sessionId, owner, upTo])
          .then((r) => {
            if (r.rowCount === 0) {
              lose();
              throw new LeaseLostError();
            }
            reserved = upTo;
          });
      },
      rebase: async (seq) => {
        session.frame_seq = seq;
        const named = TURN_OWNER.test(owner) ? owner.replace(TURN_OWNER, `:turn:${seq}`) : owner;
        if (named === owner) return;
        renamed++;
        const rename = this.db
          .query(`UPDATE sessions SET lease_owner = $3 WHERE id = $1 AND lease_owner = $2`, [sessionId, owner, named])
          .then((r) => {
            if (r.rowCount) owner = named;
          });
        renaming = rename;
        try {
          await rename;
        } finally {
          if (renaming === rename) renaming = undefined;
        }
      },
      releaseSeq: (frameSeq) => Math.max(session.frame_seq, frameSeq),
      released: () => {
        ended = true;
        clearInterval(renew);
        this.wake(sessionId);
      },
      release: async (frameSeq = 0) => {
        if (ended) return;
        clearInterval(renew);
        try {
          // the exact number: what a reservation held beyond it is given back
          await this.db.query(
            `UPDATE sessions SET lease_owner = NULL, lease_until = NULL, frame_seq = $3 WHERE id = $1 AND lease_owner = $2`,
            [sessionId, owner, Math.max(session.frame_seq, frameSeq)],
          );
        } finally {
          this.wake(sessionId);
        }
      },
    };
    return lease;
  }

  /** The session's lease as a follower sees it (undefined: no such session). */
  async inspect(sessionId: string): Promise<LeaseState | undefined> {
    const { rows } = await this.db.query<{ lease_owner: string | null; has_until: boolean; lapsed: boolean | null; frame_seq: string }>(
      `SELECT lease_owner, lease_until IS NOT NULL AS has_until, lease_until < now() AS lapsed, frame_seq FROM sessions WHERE id = $1`,
      [sessionId],
    );
    const row = rows[0];
    if (!row) return undefined;
    const turn = row.lease_owner ? TURN_OWNER.exec(row.lease_owner) : null;
    return {
      owner: row.lease_owner,
      turn: turn ? { lapsed: row.lapsed === true, base: Number(turn[1]) } : undefined,
      closedInterrupted: row.lease_owner === null && row.has_until,
      frameSeq: Number(row.frame_seq),
    };
  }

  /**
   * Settles a lapsed turn lease `owner` (as `inspect` saw it), if it is still there: frees the
   * session with `frameSeq` as its last frame number and, when `interrupted`, marks the turn as
   * closed that way. Exactly one caller wins (the UPDATE is conditional): it gets a fencing token
   * greater than the lapsed lease's (to fence that turn's frames off), the others undefined.
   */
  async settleLapsed(sessionId: string, owner: string, outcome: { interrupted: boolean; frameSeq: number }): Promise<string | undefined> {
    const r = await this.db.query<{ token: string }>(
      `UPDATE sessions SET lease_owner = NULL, lease_until = CASE WHEN $3 THEN now() ELSE NULL END, frame_seq = $4
       WHERE id = $1 AND lease_owner = $2 AND lease_until < now() RETURNING txid_current()::text AS token`,
      [sessionId, owner, outcome.interrupted, outcome.frameSeq],
    );
    const token = r.rows[0]?.token;
    if (token) this.wake(sessionId);
    return token;
  }

  /**
   * The final frame the session's last turn stored with its end (migration 004), when it is frame
   * `frameSeq` (the row's last number): for a frame log that stops just before it.
   */
  async finalFrame(sessionId: string, frameSeq: number): Promise<string | undefined> {
    const { rows } = await this.db.query<{ final_frame: string | null }>(
      `SELECT final_frame FROM sessions WHERE id = $1 AND frame_seq = $2`,
      [sessionId, frameSeq],
    );
    const frame = rows[0]?.final_frame;
    if (!frame) return undefined;
    return (JSON.parse(frame) as { seq?: unknown }).seq === frameSeq ? frame : undefined;
  }

  /** Wakes this instance's waiters for the session (it was freed). */
  private wake(sessionId: string): void {
    for (const wake of [...(this.wakers.get(sessionId) ?? [])]) wake();
  }
}
