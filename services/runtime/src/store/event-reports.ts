/**
 * The reports read from the durable events and LLM usage (event-writer.ts), in upstream's shapes:
 * the `/events/*` routes. Each takes the caller (`X-Codelab-User`) and then only sees that user's
 * sessions.
 */
import type { Database } from '@codelab/service-kit';
import { AUDIT_EVENT_TYPES, auditTypeOf, type AuditEventType, type EventType } from './event-catalog.ts';
import type { Caller } from './sessions.ts';

// ---- response shapes (upstream §4.4, §4.5, §1.1) ----

export interface EventMetrics {
  metrics: {
    agent_switches: Record<string, number>;
    agent_processing: Record<string, { count: number; total_duration_ms: number; success_count: number; failure_count: number }>;
    tool_executions: Record<string, { requested: number; completed: number; failed: number; requires_approval: number }>;
    hitl_decisions: Record<string, { APPROVE: number; EDIT: number; REJECT: number }>;
    errors: Record<string, Record<string, number>>;
  };
  computed: Record<string, number>;
  timestamp: string;
}

export interface SessionLlmMetrics {
  session_id: string;
  total_requests: number;
  successful_requests: number;
  failed_requests: number;
  total_duration_ms: number;
  average_duration_ms: number;
  total_prompt_tokens: number;
  total_completion_tokens: number;
  total_tokens: number;
  average_tokens_per_request: number;
  requests_with_tools: number;
  requests: {
    timestamp: string;
    model: string;
    duration_ms: number;
    prompt_tokens: number;
    completion_tokens: number;
    total_tokens: number;
    has_tool_calls: boolean;
    success: boolean;
    error: string | null;
  }[];
}

export type AuditEntry = {
  timestamp: string;
  event_type: AuditEventType;
  event_id: string;
  session_id: string | null;
  correlation_id: string | null;
} & Record<string, unknown>;

export interface EventStats {
  total_published: number;
  successful_handlers: number;
  failed_handlers: number;
  last_event_time: string | null;
  success_rate: number;
}

const METRIC_TYPES: EventType[] = [
  'agent.switched',
  'agent.processing.completed',
  'agent.error.occurred',
  'tool.execution.requested',
  'tool.execution.completed',
  'tool.execution.failed',
  'tool.approval.required',
  'hitl.decision.made',
];
const TOOL_COUNTER: Partial<Record<EventType, 'requested' | 'completed' | 'failed' | 'requires_approval'>> = {
  'tool.execution.requested': 'requested',
  'tool.execution.completed': 'completed',
  'tool.execution.failed': 'failed',
  'tool.approval.required': 'requires_approval',
};
const HITL_DECISIONS = new Set(['APPROVE', 'EDIT', 'REJECT']);

const round = (value: number, digits: number): number => {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
};

/**
 * `AND <column> IN (the caller's sessions)` when a caller is given; params gets the caller. The
 * caller undefined (authentication off, or an admin call relayed without a user) sees everything.
 */
function callerScope(caller: Caller, params: unknown[]): string {
  if (caller === undefined) return '';
  params.push(caller);
  return ` AND session_id IN (SELECT id FROM sessions WHERE owner_sub = $${params.length})`;
}

export class EventReports {
  private readonly db: Database;
  private readonly writes: { readonly failedWrites: number };

  /** `writes`: this process's writer, whose failed writes `/events/stats` reports. */
  constructor(db: Database, writes: { readonly failedWrites: number }) {
    this.db = db;
    this.writes = writes;
  }

  /** `GET /events/metrics` (upstream §4.4), aggregated from every stored event. */
  async metrics(caller: Caller): Promise<EventMetrics> {
    const params: unknown[] = [METRIC_TYPES];
    const scope = callerScope(caller, params);
    const { rows } = await this.db.query<{
      event_type: EventType;
      key: string;
      sub: string | null;
      n: number;
      duration_ms: number;
      successes: number;
    }>(
      `SELECT event_type,
              CASE WHEN event_type = 'agent.switched' THEN coalesce(data->>'from_agent', 'none') || '_to_' || coalesce(data->>'to_agent', 'unknown')
                   WHEN event_type IN ('agent.processing.completed', 'agent.error.occurred') THEN coalesce(data->>'agent', 'unknown')
                   ELSE coalesce(data->>'tool_name', 'unknown') END AS key,
              CASE WHEN event_type = 'agent.error.occurred' THEN coalesce(data->>'error_type', 'Error')
                   WHEN event_type = 'hitl.decision.made' THEN upper(coalesce(data->>'decision', '')) END AS sub,
              count(*)::int AS n,
              coalesce(sum(CASE WHEN jsonb_typeof(data->'duration_ms') = 'number' THEN (data->>'duration_ms')::float8 END), 0)::float8 AS duration_ms,
              (count(*) FILTER (WHERE data->'success' = 'true'::jsonb))::int AS successes
       FROM events
       WHERE event_type = ANY($1::text[])${scope}
       GROUP BY 1, 2, 3
       ORDER BY 2, 3, 1`,
      params,
    );
    const m: EventMetrics['metrics'] = { agent_switches: {}, agent_processing: {}, tool_executions: {}, hitl_decisions: {}, errors: {} };
    for (const r of rows) {
      switch (r.event_type) {
        case 'agent.switched':
          m.agent_switches[r.key] = (m.agent_switches[r.key] ?? 0) + r.n;
          break;
        case 'agent.processing.completed':
          m.agent_processing[r.key] = {
            count: r.n,
            total_duration_ms: r.duration_ms,
            success_count: r.successes,
            failure_count: r.n - r.successes,
          };
          break;
        case 'agent.error.occurred': {
          const errors = (m.errors[r.key] ??= {});
          errors[r.sub ?? 'Error'] = (errors[r.sub ?? 'Error'] ?? 0) + r.n;
          break;
        }
        case 'hitl.decision.made': {
          if (!r.sub || !HITL_DECISIONS.has(r.sub)) break;
          const decisions = (m.hitl_decisions[r.key] ??= { APPROVE: 0, EDIT: 0, REJECT: 0 });
          decisions[r.sub as 'APPROVE' | 'EDIT' | 'REJECT'] += r.n;
          break;
        }
        default: {
          const counter = TOOL_COUNTER[r.event_type];
          if (!counter) break;
          const tool = (m.tool_executions[r.key] ??= { requested: 0, completed: 0, failed: 0, requires_approval: 0 });
          tool[counter] += r.n;
        }
      }
    }
    const computed: Record<string, number> = {};
    for (const [agent, p] of Object.entries(m.agent_processing))
      computed[`${agent}_avg_duration_ms`] = p.count ? round(p.total_duration_ms / p.count, 2) : 0;
    for (const [tool, t] of Object.entries(m.tool_executions)) {
      const done = t.completed + t.failed;
      computed[`${tool}_success_rate`] = done ? round(t.completed / done, 3) : 0;
    }
    // upstream: datetime.now(timezone.utc).isoformat()
    return { metrics: m, computed, timestamp: new Date().toISOString().replace('Z', '+00:00') };
  }

  /** `GET /events/metrics/sessions`: sessions with LLM usage, in the order of their first request. */
  async sessionsWithMetrics(caller: Caller): Promise<string[]> {
    const params: unknown[] = [];
    const scope = callerScope(caller, params);
    const { rows } = await this.db.query<{ session_id: string }>(
      `SELECT session_id FROM llm_requests WHERE true${scope} GROUP BY session_id ORDER BY min(created_at), session_id`,
      params,
    );
    return rows.map((r) => r.session_id);
  }

  /**
   * `GET /events/metrics/session/:id` (upstream §4.5); undefined when the session made no LLM call.
   * Totals, averages and `requests_with_tools` count successful requests only, as upstream.
   * The caller's right to the session is checked by the route.
   */
  async sessionMetrics(sessionId: string): Promise<SessionLlmMetrics | undefined> {
    const { rows } = await this.db.query<{
      created_at: Date;
      model: string;
      duration_ms: number;
      prompt_tokens: number;
      completion_tokens: number;
      has_tool_calls: boolean;
      success: boolean;
      error: string | null;
    }>(
      `SELECT created_at, model, duration_ms, prompt_tokens, completion_tokens, has_tool_calls, success, error
       FROM llm_requests WHERE session_id = $1 ORDER BY created_at, id`,
      [sessionId],
    );
    if (!rows.length) return undefined;
    const ok = rows.filter((r) => r.success);
    const sum = (f: (r: (typeof rows)[number]) => number) => ok.reduce((acc, r) => acc + f(r), 0);
    const totalDuration = sum((r) => r.duration_ms);
    const prompt = sum((r) => r.prompt_tokens);
    const completion = sum((r) => r.completion_tokens);
    return {
      session_id: sessionId,
      total_requests: rows.length,
      successful_requests: ok.length,
      failed_requests: rows.length - ok.length,
      total_duration_ms: totalDuration,
      average_duration_ms: ok.length ? round(totalDuration / ok.length, 2) : 0,
      total_prompt_tokens: prompt,
      total_completion_tokens: completion,
      total_tokens: prompt + completion,
      average_tokens_per_request: ok.length ? round((prompt + completion) / ok.length, 2) : 0,
      requests_with_tools: ok.filter((r) => r.has_tool_calls).length,
      requests: rows.map((r) => ({
        timestamp: r.created_at.toISOString(),
        model: r.model,
        duration_ms: r.duration_ms,
        prompt_tokens: r.prompt_tokens,
        completion_tokens: r.completion_tokens,
        total_tokens: r.prompt_tokens + r.completion_tokens,
        has_tool_calls: r.has_tool_calls,
        success: r.success,
        error: r.error,
      })),
    };
  }

  /**
   * `GET /events/audit-log`: the last `limit` entries (oldest first) of upstream's audited event
   * types, optionally of one session and one entry type.
   */
  async auditLog(opts: {
    sessionId?: string | undefined;
    eventType?: AuditEventType | undefined;
    limit: number;
    caller: Caller;
  }): Promise<AuditEntry[]> {
    const params: unknown[] = [opts.eventType ? [AUDIT_EVENT_TYPES[opts.eventType]] : Object.values(AUDIT_EVENT_TYPES)];
    let where = 'event_type = ANY($1::text[])';
    if (opts.sessionId !== undefined) {
      params.push(opts.sessionId);
      where += ` AND session_id = $${params.length}`;
    }
    where += callerScope(opts.caller, params);
    params.push(opts.limit);
    const { rows } = await this.db.query<{
      id: string;
      event_type: string;
      session_id: string | null;
      correlation_id: string | null;
      data: Record<string, unknown>;
      created_at: Date;
    }>(
      `SELECT * FROM (
         SELECT id, event_type, session_id, correlation_id, data, created_at FROM events
         WHERE ${where} ORDER BY created_at DESC, id DESC LIMIT $${params.length}) last
       ORDER BY created_at, id`,
      params,
    );
    return rows.map((r) => {
      const entry: AuditEntry = {
        timestamp: r.created_at.toISOString(),
        event_type: auditTypeOf(r.event_type)!,
        event_id: r.id,
        session_id: r.session_id,
        correlation_id: r.correlation_id,
      };
      for (const [k, v] of Object.entries(r.data ?? {})) if (!(k in entry)) entry[k] = v;
      return entry;
    });
  }

  /**
   * `GET /events/stats`: every stored event was published and handled (stored); writes that failed
   * in this process are its failed handlers (they could not be stored, so they are per instance).
   */
  async stats(caller: Caller): Promise<EventStats> {
    const params: unknown[] = [];
    const scope = callerScope(caller, params);
    const { rows } = await this.db.query<{ n: number; last: Date | null }>(
      `SELECT count(*)::int AS n, max(created_at) AS last FROM events WHERE true${scope}`,
      params,
    );
    const stored = rows[0]?.n ?? 0;
    const failed = this.writes.failedWrites;
    return {
      total_published: stored + failed,
      successful_handlers: stored,
      failed_handlers: failed,
      last_event_time: rows[0]?.last ? rows[0].last.toISOString() : null,
      success_rate: round(stored / Math.max(stored + failed, 1), 3),
    };
  }
}
