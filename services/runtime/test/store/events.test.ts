/**
 * The event store's parts: upstream's categories, writes that never reject even when the database
 * is gone, and batches: written on their own after a short wait, or taken along by a turn's commit.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ServiceMetrics, type Database, type Queryable, type Service } from '@codelab/service-kit';
import { silentLogger } from '@codelab/service-kit/testing';
import { openTestDb, startRuntime } from '../routes/fixture.ts';
import { AUDIT_EVENT_TYPES, categoryOf, EVENT_TYPES } from '../../src/store/event-catalog.ts';
import { EventWriter } from '../../src/store/event-writer.ts';

describe('categoryOf', () => {
  it.each([
    ['agent.switched', 'agent'],
    ['agent.error.occurred', 'agent'],
    ['session.message.added', 'session'],
    ['tool.execution.requested', 'tool'],
    ['tool.execution.failed', 'tool'],
    ['tool.approval.required', 'hitl'],
    ['hitl.decision.made', 'hitl'],
    ['approval.rejected', 'approval'],
    ['system.startup', 'system'],
    ['llm.request.completed', 'metrics'],
    ['llm.request.failed', 'metrics'],
  ] as const)('%s is a %s event (upstream §4.2)', (type, category) => {
    expect(categoryOf(type)).toBe(category);
  });

  it('gives every event type one of the seven categories', () => {
    for (const type of EVENT_TYPES)
      expect(['agent', 'session', 'tool', 'hitl', 'approval', 'system', 'metrics']).toContain(categoryOf(type));
  });

  it('audits only known event types', () => {
    for (const type of Object.values(AUDIT_EVENT_TYPES)) expect(EVENT_TYPES).toContain(type);
  });
});

describe('EventWriter.record', () => {
  it('resolves when the database throws, and counts the failure', async () => {
    const broken = { query: async () => Promise.reject(new Error('connection refused')) } as unknown as Database;
    const metrics = new ServiceMetrics('test');
    const store = new EventWriter(broken, { logger: silentLogger(), metrics });
    await expect(
      store.record({ type: 'agent.processing.completed', data: { agent: 'coder', duration_ms: 1, success: true } }),
    ).resolves.toBeUndefined();
    await store.drain();
    expect((await metrics.render(undefined)).body).toContain('runtime_events_write_failures_total{type="agent.processing.completed"} 1');
  });
});

describe('EventWriter batches', () => {
  let runtime: Service; // runs the migrations
  let db: Database;
  beforeAll(async () => {
    runtime = await startRuntime(inject('databaseUrl'));
    db = await openTestDb(inject('databaseUrl'));
  });
  afterAll(async () => {
    await db?.close();
    await runtime?.app.close();
  });

  /** The database, counting the statements the writer sends. */
  const counted = (): { db: Database; statements: () => number } => {
    let n = 0;
    const query: Queryable['query'] = (text, params) => {
      n++;
      return db.query(text, params);
    };
    return { db: { ...db, query } as Database, statements: () => n };
  };
  const session = async (): Promise<string> => {
    const id = `events-${randomUUID()}`;
    await db.query('INSERT INTO sessions (id) VALUES ($1)', [id]);
    return id;
  };
  const stored = async (sessionId: string): Promise<string[]> =>
    (
      await db.query<{ event_type: string }>('SELECT event_type FROM events WHERE session_id = $1 ORDER BY created_at', [sessionId])
    ).rows.map((r) => r.event_type);
  const usage = (sessionId: string) =>
    ({
      sessionId,
      agent: 'ask',
      model: 'mock',
      durationMs: 3,
      promptTokens: 5,
      completionTokens: 7,
      hasToolCalls: false,
      success: true,
    }) as const;

  it('writes what was recorded together in one statement, on its own, once nothing took it', async () => {
    const { db: on, statements } = counted();
    const writer = new EventWriter(on, { logger: silentLogger(), metrics: new ServiceMetrics('test'), batchMs: 5 });
    const sessionId = await session();
    await Promise.all([
      writer.record({ type: 'session.message.added', sessionId, data: { role: 'user' } }),
      writer.recordLlmRequest(usage(sessionId)),
      writer.record({ type: 'agent.processing.completed', sessionId, data: { agent: 'ask', duration_ms: 1, success: true } }),
    ]);
    expect(statements()).toBe(1);
    expect(await stored(sessionId)).toEqual(['session.message.added', 'llm.request.completed', 'agent.processing.completed']);
  });

  it("gives the queued rows to a statement that takes them along (a turn's last commit), and takes them back when it fails", async () => {
    const { db: on, statements } = counted();
    const metrics = new ServiceMetrics('test');
    const writer = new EventWriter(on, { logger: silentLogger(), metrics, batchMs: 60_000 });
    const sessionId = await session();
    let recorded = false;
    const usageWritten = writer.recordLlmRequest(usage(sessionId)).then(() => (recorded = true));
    const taken = writer.take()!;
    expect(writer.take()).toBeUndefined(); // nothing left to take
    const { sql, params } = taken.ctes(1);
    await db.query(`WITH ${sql} SELECT $1::text AS other`, [sessionId, ...params]);
    taken.written();
    await usageWritten;
    expect(recorded).toBe(true);
    expect(await stored(sessionId)).toEqual(['llm.request.completed']);
    const { rows } = await db.query('SELECT completion_tokens FROM llm_requests WHERE session_id = $1', [sessionId]);
    expect(rows).toEqual([{ completion_tokens: 7 }]);
    expect(statements()).toBe(0); // the writer sent nothing of its own
    expect((await metrics.render(undefined)).body).toContain('runtime_events_written_total{type="llm.request.completed"} 1');

    // a statement that failed gives them back: written on their own (drain: at once), nothing lost
    const completed = writer.record({
      type: 'agent.processing.completed',
      sessionId,
      data: { agent: 'ask', duration_ms: 1, success: true },
    });
    writer.take()!.failed();
    await writer.drain();
    await completed;
    expect(statements()).toBe(1);
    expect(await stored(sessionId)).toEqual(['llm.request.completed', 'agent.processing.completed']);

    // the statement's own event goes only with it: stored when it commits, dropped when it fails
    const own = { type: 'agent.processing.completed', sessionId, data: { agent: 'ask', duration_ms: 2, success: true } } as const;
    writer.take(own)!.failed();
    await writer.drain();
    expect(statements()).toBe(1);
    const withOwn = writer.take(own)!;
    const ctes = withOwn.ctes(0);
    await db.query(`WITH ${ctes.sql} SELECT 1`, ctes.params);
    withOwn.written();
    expect(await stored(sessionId)).toEqual(['llm.request.completed', 'agent.processing.completed', 'agent.processing.completed']);
  });
});
