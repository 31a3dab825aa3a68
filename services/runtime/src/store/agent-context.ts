/**
 * A session's agent context: its current agent (on the session row, with the switch count) and its
 * switches (`agent_switches`). A switch is one transaction that locks the session row, reads the
 * agent it switches from, writes the switch and moves the session in one statement, so switches
 * racing from a turn and from REST keep one unbroken chain (each `from_agent` is the previous
 * `to_agent`). `switched_at` is the clock time, not the transaction's start.
 */
import { randomUUID } from 'node:crypto';
import type { Database, Queryable } from '@codelab/service-kit';
import type { Caller } from './sessions.ts';

export type SwitchSource = 'routing' | 'user' | 'agent';

export interface AgentContextRow {
  id: string;
  current_agent: string;
  switch_count: number;
  last_switch_at: Date | null;
  created_at: Date;
}

export interface AgentSwitch {
  from_agent: string | null;
  to_agent: string;
  reason: string | null;
  confidence: string | null;
  source: SwitchSource;
  switched_at: Date;
}

/** A switch as REST shows it (upstream's AgentSwitchDTO): `/agents/:id/current` and `/history`'s `agent_history`. */
export interface AgentSwitchDto {
  from_agent: string | null;
  to_agent: string;
  reason: string | null;
  switched_at: string;
  confidence: string | null;
}

export function switchDto(s: AgentSwitch): AgentSwitchDto {
  return {
    from_agent: s.from_agent,
    to_agent: s.to_agent,
    reason: s.reason,
    switched_at: s.switched_at.toISOString(),
    confidence: s.confidence,
  };
}

export class AgentAlreadyActiveError extends Error {}

export class AgentContextStore {
  private readonly db: Database;

  constructor(db: Database) {
    this.db = db;
  }

  /** The session's context if the caller may see it (`forUpdate` locks the row in a transaction). */
  async context(sessionId: string, caller: Caller, q: Queryable = this.db, forUpdate = false): Promise<AgentContextRow | undefined> {
    const { rows } = await q.query<AgentContextRow>(
      `SELECT id, current_agent, switch_count, last_switch_at, created_at FROM sessions
       WHERE id = $1 AND deleted_at IS NULL AND ($2::text IS NULL OR owner_sub = $2)${forUpdate ? ' FOR UPDATE' : ''}`,
      [sessionId, caller ?? null],
    );
    return rows[0];
  }

  /**
   * Switches the session to `to`. Undefined when the session is not the caller's;
   * AgentAlreadyActiveError when `refuseSame` and `to` is already current.
   */
  async switchAgent(
    sessionId: string,
    s: { to: string; reason: string; confidence: string | null; source: SwitchSource },
    opts: { caller?: Caller; refuseSame?: boolean } = {},
  ): Promise<{ from: string; context: AgentContextRow; switchedAt: Date } | undefined> {
    return this.db.transaction(async (tx) => {
      const current = await this.context(sessionId, opts.caller, tx, true);
      if (!current) return undefined;
      if (opts.refuseSame && current.current_agent === s.to) throw new AgentAlreadyActiveError(`Agent '${s.to}' is already active`);
      const { rows } = await tx.query<AgentContextRow>(
        `WITH sw AS (
           INSERT INTO agent_switches (id, session_id, from_agent, to_agent, reason, confidence, source, switched_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, clock_timestamp()) RETURNING switched_at)
         UPDATE sessions SET current_agent = $4, switch_count = switch_count + 1, last_switch_at = (SELECT switched_at FROM sw)
         WHERE id = $2 RETURNING id, current_agent, switch_count, last_switch_at, created_at`,
        [randomUUID(), sessionId, current.current_agent, s.to, s.reason, s.confidence, s.source],
      );
      const context = rows[0]!;
      return { from: current.current_agent, context, switchedAt: context.last_switch_at! };
    });
  }

  async history(sessionId: string, q: Queryable = this.db): Promise<AgentSwitch[]> {
    const { rows } = await q.query<AgentSwitch>(
      `SELECT from_agent, to_agent, reason, confidence, source, switched_at FROM agent_switches WHERE session_id = $1 ORDER BY switched_at, id`,
      [sessionId],
    );
    return rows;
  }
}
