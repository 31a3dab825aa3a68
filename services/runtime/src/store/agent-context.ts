/**
 * A session's current agent and its switches: one transaction writes the `agent_switches` row and
 * moves `sessions.current_agent` (with the switch count), so the two never disagree.
 */
import { randomUUID } from 'node:crypto';
import type { Database } from '@codelab/service-kit';

export type SwitchSource = 'routing' | 'user' | 'agent';

export interface AgentSwitch {
  from_agent: string | null;
  to_agent: string;
  reason: string | null;
  confidence: string | null;
  source: SwitchSource;
  switched_at: Date;
}

export class AgentContextStore {
  constructor(private readonly db: Database) {}

  async switchAgent(sessionId: string, s: { from: string | null; to: string; reason: string; confidence: string; source: SwitchSource }): Promise<AgentSwitch> {
    return this.db.transaction(async (tx) => {
      const { rows } = await tx.query<{ switched_at: Date }>(
        `INSERT INTO agent_switches (id, session_id, from_agent, to_agent, reason, confidence, source) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING switched_at`,
        [randomUUID(), sessionId, s.from, s.to, s.reason, s.confidence, s.source],
      );
      const switchedAt = rows[0]!.switched_at;
      await tx.query(`UPDATE sessions SET current_agent = $2, switch_count = switch_count + 1, last_switch_at = $3 WHERE id = $1`, [sessionId, s.to, switchedAt]);
      return { from_agent: s.from, to_agent: s.to, reason: s.reason, confidence: s.confidence, source: s.source, switched_at: switchedAt };
    });
  }

  async history(sessionId: string): Promise<AgentSwitch[]> {
    const { rows } = await this.db.query<AgentSwitch>(
      `SELECT from_agent, to_agent, reason, confidence, source, switched_at FROM agent_switches WHERE session_id = $1 ORDER BY switched_at, id`,
      [sessionId],
    );
    return rows;
  }
}
