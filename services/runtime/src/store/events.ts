/**
 * Durable events and LLM usage: what upstream kept in in-memory dictionaries (the event bus's
 * metrics, audit log and stats, the per-session LLM metrics), written to the `events` and
 * `llm_requests` tables so they survive restarts and are the same on every runtime instance.
 *
 * Writing never fails the caller: `record` and `recordLlmRequest` log and swallow database
 * errors (counted in `runtime_events_write_failures_total`), so a turn never breaks because its
 * bookkeeping could not be stored. The reads answer the `/events/*` routes; each takes the caller
 * (`X-Codelab-User`) and then only sees that user's sessions.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Database, ServiceMetrics } from '@codelab/service-kit';
import type { Caller } from './sessions.ts';

/** Upstream's `EventType` values (reference §4.2). */
export const EVENT_TYPES = [
  'agent.switched',
  'agent.processing.started',
  'agent.processing.completed',
  'agent.error.occurred',
  'session.created',
  'session.updated',
  'session.deleted',
  'session.message.added',
  'tool.execution.requested',
  'tool.execution.started',
  'tool.execution.completed',
  'tool.execution.failed',
  'tool.approval.required',
  'hitl.approval.requested',
  'hitl.decision.made',
  'hitl.timeout.occurred',
  'approval.requested',
  'approval.approved',
  'approval.rejected',
  'system.startup',
  'system.shutdown',
  'llm.request.started',
  'llm.request.completed',
  'llm.request.failed',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];
export const CATEGORIES = ['agent', 'session', 'tool', 'hitl', 'approval', 'system', 'metrics'] as const;
export type EventCategory = (typeof CATEGORIES)[number];

/**
 * The `data` of the events the metrics and the audit log read: these keys are what
 * `/events/metrics` groups by, so they are required. Other events take any object.
 */
export interface KnownEventData {
  'agent.switched': { from_agent: string | null; to_agent: string; reason: string | null; confidence: string | null; source?: 'routing' | 'user' | 'agent' };
  'agent.processing.completed': { agent: string; duration_ms: number; success: boolean };
  'agent.error.occurred': { agent: string; error_message: string; error_type: string };
  'tool.execution.requested': { tool_name: string; arguments: unknown; call_id: string; agent: string };
  'tool.execution.completed': { tool_name: string; call_id: string };
  'tool.execution.failed': { tool_name: string; call_id: string; error: string };
  'tool.approval.required': { tool_name: string; arguments: unknown; call_id: string; reason: string | null };
  /** decision in any case; counted as APPROVE, EDIT or REJECT. */
  'hitl.decision.made': { tool_name: string; call_id: string; decision: string };
}

export type EventData<T extends EventType> = (T extends keyof KnownEventData ? KnownEventData[T] : unknown) & Record<string, unknown>;

export interface NewEvent<T extends EventType = EventType> {
  type: T;
  sessionId?: string | undefined;
  /** Ties events of one turn together (e.g. the turn's request id); at most 64 characters are kept. */
  correlationId?: string | undefined;
  data: EventData<T>;
}

export interface LlmRequestRecord {
  sessionId: string;
  agent: string | null;
  model: string;
  durationMs: number;
  promptTokens: number;
  completionTokens: number;
  hasToolCalls: boolean;
  success: boolean;
  error?: string | undefined;
  correlationId?: string | undefined;
}

/** Upstream's category of an event type (`tool.approval.required` is a hitl event). */
export function categoryOf(type: EventType): EventCategory {
  if (type === 'tool.approval.required') return 'hitl';
  if (type.startsWith('llm.')) return 'metrics';
  const prefix = type.slice(0, type.indexOf('.'));
  return (CATEGORIES as readonly string[]).includes(prefix) ? (prefix as EventCategory) : 'system';
}

/** The audit log's entry types and the events they come from (upstream's AuditLogger). */
export const AUDIT_EVENT_TYPES = {
  agent_switched: 'agent.switched',
  hitl_decision_made: 'hitl.decision.made',
  agent_error: 'agent.error.occurred',
  tool_execution_failed: 'tool.execution.failed',
  tool_approval_required: 'tool.approval.required',
} as const satisfies Record<string, EventType>;

export type AuditEventType = keyof typeof AUDIT_EVENT_TYPES;
const AUDIT_NAME_OF = new Map<string, AuditEventType>(Object.entries(AUDIT_EVENT_TYPES).map(([name, type]) => [type, name as AuditEventType]));

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

const KNOWN_TYPES = new Set<string>(EVENT_TYPES);
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

const label = (type: string): string => (KNOWN_TYPES.has(type) ? type : 'other');

type QueuedRow = { kind: 'event'; params: unknown[] } | { kind: 'llm'; params: unknown[]; event: unknown[] };

/** Now, to the microsecond (monotonic within the process): events keep the order they were recorded in. */
function recordedAt(): string {
  const us = Math.round((performance.timeOrigin + performance.now()) * 1000);
  return new Date(Math.floor(us / 1000)).toISOString().replace('Z', `${String(us % 1000).padStart(3, '0')}Z`);
}

export class EventStore {
  private readonly logger: Logger;
  private readonly written;
  private readonly failures;
  /** Writes that failed in this process (they cannot be stored: /events/stats reports them as failed handlers). */
  private failedWrites = 0;

  private readonly db: Database;

  constructor(
    db: Database,
    opts: { logger: Logger; metrics: ServiceMetrics },
  ) {
    this.db = db;
    this.logger = opts.logger;
    this.written = opts.metrics.counter({ name: 'runtime_events_written_total', help: 'Durable events written, by event type', labelNames: ['type'] });
    this.failures = opts.metrics.counter({
      name: 'runtime_events_write_failures_total',
      help: 'Durable events (and LLM usage rows) that could not be written, by event type; the turn went on without them',
      labelNames: ['type'],
    });
  }

  /**
   * Writes one event. Never rejects: a failed write is logged and counted. Callers may await it
   * (the event is stored when it resolves) or not (`drain` waits for it at shutdown). Events are
   * written in batches (one multi-row INSERT per event-loop turn, one batch at a time), so a busy
   * runtime spends one round trip on many events; each keeps the time it was recorded at.
   */
  record<T extends EventType>(event: NewEvent<T>): Promise<void> {
    return this.enqueue(event.type, {
      kind: 'event',
      params: [randomUUID(), event.type, categoryOf(event.type), event.sessionId ?? null, event.correlationId?.slice(0, 64) ?? null, JSON.stringify(event.data ?? {}), recordedAt()],
    });
  }

  /**
   * Writes one LLM call of a session (upstream's SessionMetricsCollector) together with its
   * `llm.request.completed` or `llm.request.failed` event, in the same batch statement. Do not
   * record those two events separately. Never rejects.
   */
  recordLlmRequest(r: LlmRequestRecord): Promise<void> {
    const type: EventType = r.success ? 'llm.request.completed' : 'llm.request.failed';
    const durationMs = Math.max(0, Math.round(r.durationMs));
    const data = r.success
      ? {
          model: r.model,
          agent: r.agent,
          duration_ms: durationMs,
          prompt_tokens: r.promptTokens,
          completion_tokens: r.completionTokens,
          total_tokens: r.promptTokens + r.completionTokens,
          has_tool_calls: r.hasToolCalls,
        }
      : { model: r.model, agent: r.agent, duration_ms: durationMs, error: r.error ?? 'unknown error' };
    const at = recordedAt();
    return this.enqueue(type, {
      kind: 'llm',
      params: [
        randomUUID(),
        r.sessionId,
        r.agent,
        r.model,
        durationMs,
        Math.max(0, Math.trunc(r.promptTokens)),
        Math.max(0, Math.trunc(r.completionTokens)),
        r.hasToolCalls,
        r.success,
        r.success ? null : (r.error ?? 'unknown error'),
        at,
      ],
      event: [randomUUID(), type, 'metrics', r.sessionId, r.correlationId?.slice(0, 64) ?? null, JSON.stringify(data), at],
    });
  }

  /** Waits for the writes in flight (shutdown: before the pool closes). */
  async drain(): Promise<void> {
    while (this.queue.length || this.flushing) await this.flushing ?? this.flush();
  }

  private queue: { type: EventType; row: QueuedRow; done: () => void }[] = [];
  private flushing: Promise<void> | undefined;
  private scheduled = false;

  private enqueue(type: EventType, row: QueuedRow): Promise<void> {
    return new Promise<void>((done) => {
      this.queue.push({ type, row, done });
      if (!this.scheduled && !this.flushing) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          void this.flush();
        });
      }
    });
  }

  /** Writes what is queued, one batch at a time (the next batch starts when this one ends). */
  private flush(): Promise<void> {
    if (this.flushing || !this.queue.length) return this.flushing ?? Promise.resolve();
    const batch = this.queue.splice(0, 500);
    this.flushing = (async () => {
      try {
        try {
          await this.writeBatch(batch.map((b) => b.row));
          for (const b of batch) this.written.inc({ type: label(b.type) });
        } catch (err) {
          if (batch.length === 1) throw err;
          // one bad row (say, a session deleted meanwhile) must not cost the others: one by one
          for (const b of batch) {
            try {
              await this.writeBatch([b.row]);
              this.written.inc({ type: label(b.type) });
            } catch (e) {
              this.failed(b.type, e);
            }
          }
        }
      } catch (err) {
        this.failed(batch[0]!.type, err);
      } finally {
        for (const b of batch) b.done();
        this.flushing = undefined;
        if (this.queue.length) void this.flush();
      }
    })();
    return this.flushing;
  }

  private failed(type: EventType, err: unknown): void {
    this.failedWrites += 1;
    this.failures.inc({ type: label(type) });
    this.logger.warn({ err, event_type: type }, 'event could not be written; continuing without it');
  }

  private async writeBatch(rows: QueuedRow[]): Promise<void> {
    const events = rows.map((r) => (r.kind === 'event' ? r.params : r.event));
    const llm = rows.filter((r): r is Extract<QueuedRow, { kind: 'llm' }> => r.kind === 'llm').map((r) => r.params);
    const col = (xs: unknown[][], i: number): unknown[] => xs.map((x) => x[i]);
    await this.db.query(
      `WITH l AS (
         INSERT INTO llm_requests (id, session_id, agent, model, duration_ms, prompt_tokens, completion_tokens, has_tool_calls, success, error, created_at)
         SELECT * FROM unnest($8::uuid[], $9::text[], $10::text[], $11::text[], $12::int[], $13::int[], $14::int[], $15::bool[], $16::bool[], $17::text[], $18::timestamptz[])
         RETURNING 1)
       INSERT INTO events (id, event_type, category, session_id, correlation_id, data, created_at)
       SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::timestamptz[])`,
      [...[0, 1, 2, 3, 4, 5, 6].map((i) => col(events, i)), ...[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((i) => col(llm, i))],
    );
  }

  // ---- reads ----

  /** `GET /events/metrics` (upstream §4.4), aggregated from every stored event. */
  async metrics(caller: Caller): Promise<EventMetrics> {
    const params: unknown[] = [METRIC_TYPES];
    const scope = callerScope(caller, params);
    const { rows } = await this.db.query<{ event_type: EventType; key: string; sub: string | null; n: number; duration_ms: number; successes: number }>(
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
          m.agent_processing[r.key] = { count: r.n, total_duration_ms: r.duration_ms, success_count: r.successes, failure_count: r.n - r.successes };
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
    for (const [agent, p] of Object.entries(m.agent_processing)) computed[`${agent}_avg_duration_ms`] = p.count ? round(p.total_duration_ms / p.count, 2) : 0;
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
  async auditLog(opts: { sessionId?: string | undefined; eventType?: AuditEventType | undefined; limit: number; caller: Caller }): Promise<AuditEntry[]> {
    const params: unknown[] = [opts.eventType ? [AUDIT_EVENT_TYPES[opts.eventType]] : Object.values(AUDIT_EVENT_TYPES)];
    let where = 'event_type = ANY($1::text[])';
    if (opts.sessionId !== undefined) {
      params.push(opts.sessionId);
      where += ` AND session_id = $${params.length}`;
    }
    where += callerScope(opts.caller, params);
    params.push(opts.limit);
    const { rows } = await this.db.query<{ id: string; event_type: string; session_id: string | null; correlation_id: string | null; data: Record<string, unknown>; created_at: Date }>(
      `SELECT * FROM (
         SELECT id, event_type, session_id, correlation_id, data, created_at FROM events
         WHERE ${where} ORDER BY created_at DESC, id DESC LIMIT $${params.length}) last
       ORDER BY created_at, id`,
      params,
    );
    return rows.map((r) => {
      const entry: AuditEntry = {
        timestamp: r.created_at.toISOString(),
        event_type: AUDIT_NAME_OF.get(r.event_type)!,
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
    const { rows } = await this.db.query<{ n: number; last: Date | null }>(`SELECT count(*)::int AS n, max(created_at) AS last FROM events WHERE true${scope}`, params);
    const stored = rows[0]?.n ?? 0;
    const failed = this.failedWrites;
    return {
      total_published: stored + failed,
      successful_handlers: stored,
      failed_handlers: failed,
      last_event_time: rows[0]?.last ? rows[0].last.toISOString() : null,
      success_rate: round(stored / Math.max(stored + failed, 1), 3),
    };
  }
}
