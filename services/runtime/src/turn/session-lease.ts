/**
 * One turn at a time per session, across every runtime instance: a lease on the session row,
 * taken by a conditional UPDATE (free, or expired), renewed while the turn runs, released at its
 * end. A crashed instance's lease runs out after `ttlMs`. It needs nothing but the database, so
 * it works on a shared PostgreSQL and on the embedded engine alike. Waiters on this instance are
 * woken at once by a release; others poll with back-off.
 */
import { randomUUID } from 'node:crypto';
import type { Database } from '@codelab/service-kit';
import type { RuntimeMetrics } from '../metrics.ts';

export interface LeasedSession {
  current_agent: string;
  frame_seq: number;
  /** Tool calls still waiting for the IDE or a human. */
  open_tool_calls: number;
}

export class SessionBusyError extends Error {}

export interface Lease {
  readonly session: LeasedSession;
  /** False once a renewal found the lease taken over (the turn should stop writing). */
  readonly held: boolean;
  /** Frees the session; `frameSeq` (the turn's last frame number) is saved in the same statement. */
  release(frameSeq?: number): Promise<void>;
}

export class SessionLeases {
  private readonly instance = randomUUID().slice(0, 8);
  private readonly wakers = new Map<string, Set<() => void>>();

  constructor(
    private readonly db: Database,
    private readonly opts: { ttlMs: number; metrics: RuntimeMetrics; onRenew?: (sessionId: string) => void },
  ) {}

  /** One attempt: the session's lease if it is free (and the caller's, when a caller is given). */
  private async tryTake(sessionId: string, owner: string, caller?: string): Promise<LeasedSession | undefined> {
    const { rows } = await this.db.query<{ current_agent: string; frame_seq: string; open_tool_calls: string }>(
      `UPDATE sessions SET lease_owner = $2, lease_until = now() + $3 * interval '1 millisecond'
       WHERE id = $1 AND deleted_at IS NULL AND ($4::text IS NULL OR owner_sub = $4) AND (lease_owner IS NULL OR lease_until < now())
       RETURNING current_agent, frame_seq,
         (SELECT count(*) FROM tool_calls WHERE session_id = $1 AND status IN ('queued', 'pending_approval', 'approved', 'awaiting_result')) AS open_tool_calls`,
      [sessionId, owner, this.opts.ttlMs, caller ?? null],
    );
    const row = rows[0];
    return row ? { current_agent: row.current_agent, frame_seq: Number(row.frame_seq), open_tool_calls: Number(row.open_tool_calls) } : undefined;
  }

  /**
   * The fast path of a turn: one statement takes the lease of an existing, free session of the
   * caller. Undefined when the session is missing, someone else's or busy (then `acquire`).
   */
  async tryAcquire(sessionId: string, caller?: string): Promise<Lease | undefined> {
    const owner = `${this.instance}:${randomUUID().slice(0, 8)}`;
    const session = await this.tryTake(sessionId, owner, caller);
    if (!session) return undefined;
    this.opts.metrics.sessionLockWait.observe(0);
    return this.hold(sessionId, owner, session);
  }

  /** Waits up to `timeoutMs` for the session; SessionBusyError when another turn keeps it. */
  async acquire(sessionId: string, timeoutMs: number, signal?: AbortSignal): Promise<Lease> {
    const owner = `${this.instance}:${randomUUID().slice(0, 8)}`;
    const started = performance.now();
    let delay = 5;
    for (;;) {
      const session = await this.tryTake(sessionId, owner);
      if (session) {
        this.opts.metrics.sessionLockWait.observe((performance.now() - started) / 1000);
        return this.hold(sessionId, owner, session);
      }
      const left = timeoutMs - (performance.now() - started);
      if (left <= 0 || signal?.aborted) {
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

  private hold(sessionId: string, owner: string, session: LeasedSession): Lease {
    let held = true;
    const renew = setInterval(() => {
      this.db
        .query(`UPDATE sessions SET lease_until = now() + $3 * interval '1 millisecond' WHERE id = $1 AND lease_owner = $2`, [sessionId, owner, this.opts.ttlMs])
        .then((r) => {
          if (r.rowCount === 0) held = false;
          else this.opts.onRenew?.(sessionId);
        })
        .catch(() => undefined); // a failed renewal is retried at the next tick; the TTL covers a few
    }, Math.max(50, this.opts.ttlMs / 3));
    renew.unref();
    return {
      session,
      get held() {
        return held;
      },
      release: async (frameSeq = 0) => {
        clearInterval(renew);
        try {
          await this.db.query(`UPDATE sessions SET lease_owner = NULL, lease_until = NULL, frame_seq = GREATEST(frame_seq, $3) WHERE id = $1 AND lease_owner = $2`, [
            sessionId,
            owner,
            frameSeq,
          ]);
        } finally {
          for (const wake of [...(this.wakers.get(sessionId) ?? [])]) wake();
        }
      },
    };
  }
}

