/**
 * Tool calls the LLM asked for, keyed by session and call id, with their approval state. Every
 * state change is one conditional UPDATE (`WHERE status IN (…)`), so two instances racing on the
 * same call cannot both win, and an approval past its deadline can only become `expired`.
 */
import type { Queryable } from '@codelab/service-kit';

export type ToolCallStatus =
  | 'queued'
  | 'pending_approval'
  | 'approved'
  | 'awaiting_result'
  | 'completed'
  | 'failed'
  | 'rejected'
  | 'forbidden'
  | 'superseded';

/** Statuses of a call that still waits for the IDE (or a human). */
export const OPEN_STATUSES: readonly ToolCallStatus[] = ['queued', 'pending_approval', 'approved', 'awaiting_result'];

export interface ToolCallRow {
  session_id: string;
  call_id: string;
  batch: string;
  position: number;
  agent: string;
  tool_name: string;
  arguments: Record<string, unknown>;
  final_arguments: Record<string, unknown> | null;
  requires_approval: boolean;
  approval_reason: string | null;
  status: ToolCallStatus;
  decision: string | null;
  decision_reason: string | null;
  created_at: Date;
  sent_at: Date | null;
  expires_at: Date | null;
  decided_at: Date | null;
  completed_at: Date | null;
}

export interface NewToolCall {
  callId: string;
  position: number;
  agent: string;
  toolName: string;
  arguments: Record<string, unknown>;
  requiresApproval: boolean;
  approvalReason: string | null;
  status: ToolCallStatus;
}

const COLUMNS =
  'session_id, call_id, batch, position, agent, tool_name, arguments, final_arguments, requires_approval, approval_reason, status, decision, decision_reason, created_at, sent_at, expires_at, decided_at, completed_at';

export class ToolCallStore {
  private readonly db: Queryable;

  constructor(db: Queryable) {
    this.db = db;
  }

  /** Call ids already used in this session (providers may repeat ids such as `call_0`). */
  async existingIds(sessionId: string, ids: readonly string[]): Promise<Set<string>> {
    if (!ids.length) return new Set();
    const { rows } = await this.db.query<{ call_id: string }>(
      'SELECT call_id FROM tool_calls WHERE session_id = $1 AND call_id = ANY($2::text[])',
      [sessionId, ids],
    );
    return new Set(rows.map((r) => r.call_id));
  }

  async insertBatch(sessionId: string, batch: string, calls: readonly NewToolCall[], q: Queryable = this.db): Promise<void> {
    for (const c of calls) {
      await q.query(
        `INSERT INTO tool_calls (session_id, call_id, batch, position, agent, tool_name, arguments, requires_approval, approval_reason, status)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
        [
          sessionId,
          c.callId,
          batch,
          c.position,
          c.agent,
          c.toolName,
          JSON.stringify(c.arguments),
          c.requiresApproval,
          c.approvalReason,
          c.status,
        ],
      );
    }
  }

  async get(sessionId: string, callId: string): Promise<ToolCallRow | undefined> {
    const { rows } = await this.db.query<ToolCallRow>(`SELECT ${COLUMNS} FROM tool_calls WHERE session_id = $1 AND call_id = $2`, [
      sessionId,
      callId,
    ]);
    return rows[0];
  }

  /** A queued call goes to the IDE: waiting for a human (with its deadline) or for the result. */
  async markSent(sessionId: string, callId: string, approvalTimeoutMs: number | undefined): Promise<ToolCallRow | undefined> {
    const { rows } = await this.db.query<ToolCallRow>(
      `UPDATE tool_calls SET sent_at = now(),
         status = CASE WHEN requires_approval THEN 'pending_approval' ELSE 'awaiting_result' END,
         expires_at = CASE WHEN requires_approval THEN now() + $3 * interval '1 millisecond' ELSE NULL END
       WHERE session_id = $1 AND call_id = $2 AND status = 'queued' RETURNING ${COLUMNS}`,
      [sessionId, callId, approvalTimeoutMs ?? 0],
    );
    return rows[0];
  }

  /**
   * Moves a call from one of `from` to `to` (an approval only while its deadline has not passed);
   * undefined when another request changed it first or it expired.
   */
  async transition(
    sessionId: string,
    callId: string,
    from: readonly ToolCallStatus[],
    to: ToolCallStatus,
    fields: { decision?: string; decisionReason?: string; finalArguments?: Record<string, unknown>; completed?: boolean } = {},
    q: Queryable = this.db,
  ): Promise<ToolCallRow | undefined> {
    const { rows } = await q.query<ToolCallRow>(
      `UPDATE tool_calls SET status = $4,
         decision = COALESCE($5, decision), decision_reason = COALESCE($6, decision_reason),
         final_arguments = COALESCE($7::jsonb, final_arguments),
         decided_at = CASE WHEN $5::text IS NOT NULL THEN now() ELSE decided_at END,
         completed_at = CASE WHEN $8 THEN now() ELSE completed_at END
       WHERE session_id = $1 AND call_id = $2 AND status = ANY($3::text[])
         AND (status <> 'pending_approval' OR expires_at IS NULL OR expires_at > now())
       RETURNING ${COLUMNS}`,
      [
        sessionId,
        callId,
        from,
        to,
        fields.decision ?? null,
        fields.decisionReason ?? null,
        fields.finalArguments ? JSON.stringify(fields.finalArguments) : null,
        fields.completed ?? false,
      ],
    );
    return rows[0];
  }

  /** The next call of a batch that still waits its turn. */
  async nextQueued(sessionId: string, batch: string): Promise<ToolCallRow | undefined> {
    const { rows } = await this.db.query<ToolCallRow>(
      `SELECT ${COLUMNS} FROM tool_calls WHERE session_id = $1 AND batch = $2 AND status = 'queued' ORDER BY position LIMIT 1`,
      [sessionId, batch],
    );
    return rows[0];
  }

  /** Calls of a batch that still wait for the IDE or a human. */
  async openInBatch(sessionId: string, batch: string): Promise<number> {
    const { rows } = await this.db.query<{ n: string }>(
      `SELECT count(*) AS n FROM tool_calls WHERE session_id = $1 AND batch = $2 AND status = ANY($3::text[])`,
      [sessionId, batch, OPEN_STATUSES],
    );
    return Number(rows[0]?.n ?? 0);
  }

  /** Every call of the session that still waits (any batch), oldest first. */
  async open(sessionId: string): Promise<ToolCallRow[]> {
    const { rows } = await this.db.query<ToolCallRow>(
      `SELECT ${COLUMNS} FROM tool_calls WHERE session_id = $1 AND status = ANY($2::text[]) ORDER BY created_at, position`,
      [sessionId, OPEN_STATUSES],
    );
    return rows;
  }

  /** Sessions with approvals past their deadline (for the expiry sweep). */
  async sessionsWithExpiredApprovals(limit = 100): Promise<string[]> {
    const { rows } = await this.db.query<{ session_id: string }>(
      `SELECT DISTINCT session_id FROM tool_calls WHERE status = 'pending_approval' AND expires_at <= now() LIMIT $1`,
      [limit],
    );
    return rows.map((r) => r.session_id);
  }

  /** Rejects a session's approvals past their deadline with reason `expired`; returns them. */
  async expire(sessionId: string, q: Queryable = this.db): Promise<ToolCallRow[]> {
    const { rows } = await q.query<ToolCallRow>(
      `UPDATE tool_calls SET status = 'rejected', decision = 'expired', decision_reason = 'expired', decided_at = now(), completed_at = now()
       WHERE session_id = $1 AND status = 'pending_approval' AND expires_at <= now() RETURNING ${COLUMNS}`,
      [sessionId],
    );
    return rows;
  }
}
