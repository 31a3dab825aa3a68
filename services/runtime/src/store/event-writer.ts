/**
 * Durable events and LLM usage, written: what upstream kept in in-memory dictionaries (the event
 * bus's metrics, audit log and stats, the per-session LLM metrics) goes to the `events` and
 * `llm_requests` tables, so it survives restarts and is the same on every runtime instance.
 *
 * Writing never fails the caller: `record` and `recordLlmRequest` log and swallow database errors
 * (counted in `runtime_events_write_failures_total`, and in `failedWrites` for `/events/stats`), so
 * a turn never breaks because its bookkeeping could not be stored.
 *
 * Rows are written in batches, one multi-row INSERT at a time, and ride along with a turn's own
 * last commit where they can (`take`: store/sessions.ts `append` with a turn's end): under load a
 * turn ends every few milliseconds and its commit carries the events queued since the last one, so
 * bookkeeping costs no commit of its own. What no turn takes is written on its own `batchMs`
 * after it was queued (EVENT_BATCH_MS), and at once by `drain` (shutdown).
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Database, ServiceMetrics } from '@codelab/service-kit';
import { categoryOf, EVENT_TYPES, type EventData, type EventType } from './event-catalog.ts';

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

const KNOWN_TYPES = new Set<string>(EVENT_TYPES);
const label = (type: string): string => (KNOWN_TYPES.has(type) ? type : 'other');

type QueuedRow = { kind: 'event'; params: unknown[] } | { kind: 'llm'; params: unknown[]; event: unknown[] };

/** How long queued rows wait for a turn's commit to take them before they are written on their own. */
const EVENT_BATCH_MS = 50;

/**
 * Queued rows a statement took along (`EventWriter.take`): `ctes` are its data-modifying CTEs
 * (`llm_requests`, then `events`), numbering their parameters after `offset`; then `written` once
 * the statement committed, or `failed` (the rows go back to the queue, nothing is lost).
 */
export interface TakenRows {
  ctes(offset: number): { sql: string; params: unknown[] };
  written(): void;
  failed(): void;
}

/** An event as a queued row. */
function eventRow(event: NewEvent): QueuedRow {
  return {
    kind: 'event',
    params: [
      randomUUID(),
      event.type,
      categoryOf(event.type),
      event.sessionId ?? null,
      event.correlationId?.slice(0, 64) ?? null,
      JSON.stringify(event.data ?? {}),
      recordedAt(),
    ],
  };
}

/** The CTEs that insert `rows` (their `llm_requests` rows, then every event), parameters numbered after `offset`. */
function insertCtes(rows: readonly QueuedRow[], offset: number): { sql: string; params: unknown[] } {
  const events = rows.map((r) => (r.kind === 'event' ? r.params : r.event));
  const llm = rows.filter((r): r is Extract<QueuedRow, { kind: 'llm' }> => r.kind === 'llm').map((r) => r.params);
  const col = (xs: unknown[][], i: number): unknown[] => xs.map((x) => x[i]);
  const $ = (n: number): string => `$${offset + n}`;
  const sql = `ev_llm AS (
         INSERT INTO llm_requests (id, session_id, agent, model, duration_ms, prompt_tokens, completion_tokens, has_tool_calls, success, error, created_at)
         SELECT * FROM unnest(${$(8)}::uuid[], ${$(9)}::text[], ${$(10)}::text[], ${$(11)}::text[], ${$(12)}::int[], ${$(13)}::int[], ${$(14)}::int[], ${$(15)}::bool[], ${$(16)}::bool[], ${$(17)}::text[], ${$(18)}::timestamptz[])
         RETURNING 1),
       ev_events AS (
         INSERT INTO events (id, event_type, category, session_id, correlation_id, data, created_at)
         SELECT * FROM unnest(${$(1)}::uuid[], ${$(2)}::text[], ${$(3)}::text[], ${$(4)}::text[], ${$(5)}::text[], ${$(6)}::jsonb[], ${$(7)}::timestamptz[])
         RETURNING 1)`;
  return {
    sql,
    params: [...[0, 1, 2, 3, 4, 5, 6].map((i) => col(events, i)), ...[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((i) => col(llm, i))],
  };
}

/** Now, to the microsecond (monotonic within the process): events keep the order they were recorded in. */
function recordedAt(): string {
  const us = Math.round((performance.timeOrigin + performance.now()) * 1000);
  return new Date(Math.floor(us / 1000)).toISOString().replace('Z', `${String(us % 1000).padStart(3, '0')}Z`);
}

export class EventWriter {
  private readonly logger: Logger;
  private readonly written;
  private readonly failures;
  /** Writes that failed in this process (they cannot be stored). */
  private failedCount = 0;

  private readonly db: Database;
  private readonly batchMs: number;

  constructor(db: Database, opts: { logger: Logger; metrics: ServiceMetrics; batchMs?: number }) {
    this.db = db;
    this.batchMs = opts.batchMs ?? EVENT_BATCH_MS;
    this.logger = opts.logger;
    this.written = opts.metrics.counter({
      name: 'runtime_events_written_total',
      help: 'Durable events written, by event type',
      labelNames: ['type'],
    });
    this.failures = opts.metrics.counter({
      name: 'runtime_events_write_failures_total',
      help: 'Durable events (and LLM usage rows) that could not be written, by event type; the turn went on without them',
      labelNames: ['type'],
    });
  }

  /**
   * Writes one event. Never rejects: a failed write is logged and counted. Callers may await it
   * (the event is stored when it resolves) or not (`drain` waits for it at shutdown). Events are
   * written in batches (see the module comment), so a busy runtime spends no commit of its own on
   * them; each keeps the time it was recorded at.
   */
  record<T extends EventType>(event: NewEvent<T>): Promise<void> {
    return this.enqueue(event.type, eventRow(event));
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

  /** Writes what is queued now and waits for the writes in flight (shutdown: before the pool closes). */
  async drain(): Promise<void> {
    while (this.queue.length || this.flushing) (await this.flushing) ?? this.flush();
  }

  /**
   * Takes the queued rows (up to a batch) for another statement to insert in its own commit, with
   * `own`, an event of that statement's (stored only with it); undefined when there is nothing. The
   * statement reports `written`, or `failed`: the queued rows are queued again, `own` is dropped
   * (its writer records what happened instead).
   */
  take(own?: NewEvent): TakenRows | undefined {
    if (!this.queue.length && !own) return undefined;
    const batch = this.queue.splice(0, 500);
    if (!this.queue.length) this.unschedule();
    const rows = batch.map((b) => b.row);
    if (own) rows.push(eventRow(own));
    return {
      ctes: (offset) => insertCtes(rows, offset),
      written: () => {
        for (const b of batch) {
          this.written.inc({ type: label(b.type) });
          b.done();
        }
        if (own) this.written.inc({ type: label(own.type) });
      },
      failed: () => {
        this.queue.unshift(...batch);
        if (this.queue.length) this.schedule();
      },
    };
  }

  /** Writes that failed in this process (they cannot be stored: /events/stats reports them as failed handlers). */
  get failedWrites(): number {
    return this.failedCount;
  }

  private queue: { type: EventType; row: QueuedRow; done: () => void }[] = [];
  private flushing: Promise<void> | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;

  private enqueue(type: EventType, row: QueuedRow): Promise<void> {
    return new Promise<void>((done) => {
      this.queue.push({ type, row, done });
      this.schedule();
    });
  }

  /** Writes the queue `batchMs` from now, unless a turn's commit takes it first (or a write is in flight: it goes on with the rest). */
  private schedule(): void {
    if (this.timer || this.flushing) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.batchMs);
  }

  private unschedule(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Writes what is queued, one batch at a time (the next batch starts when this one ends). */
  private flush(): Promise<void> {
    if (this.flushing || !this.queue.length) return this.flushing ?? Promise.resolve();
    this.unschedule();
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
    this.failedCount += 1;
    this.failures.inc({ type: label(type) });
    this.logger.warn({ err, event_type: type }, 'event could not be written; continuing without it');
  }

  private async writeBatch(rows: QueuedRow[]): Promise<void> {
    const { sql, params } = insertCtes(rows, 0);
    await this.db.query(`WITH ${sql} SELECT 1`, params);
  }
}
