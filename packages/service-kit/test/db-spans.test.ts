/**
 * The kit's span per PostgreSQL statement (db-spans.ts, made in db.ts), against the real database
 * of the suite, with an in-memory trace SDK registered for this file.
 */
import { context, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { AlwaysOnSampler, InMemorySpanExporter, ParentBasedSampler, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { openDatabase, type Database } from '../src/db.ts';
import { dbTargetOf } from '../src/db-spans.ts';
import { ServiceMetrics } from '../src/metrics.ts';
import { silentLogger } from '@codelab/service-kit/testing';

const exporter = new InMemorySpanExporter();
const provider = new TracerProvider({
  sampler: new ParentBasedSampler({ root: new AlwaysOnSampler() }),
  spanProcessors: [new SimpleSpanProcessor({ exporter })],
});
const tracer = trace.getTracer('test');
let db: Database;
let database: string;

beforeAll(async () => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(provider);
  db = await openDatabase({
    service: 'svc',
    url: inject('databaseUrl'),
    poolMax: 2,
    logger: silentLogger(),
    metrics: new ServiceMetrics('svc'),
    poolName: 'main',
  });
  database = dbTargetOf(inject('databaseUrl'), 'main').database;
});
afterAll(async () => {
  await db?.close();
  trace.disable();
  context.disable();
});
beforeEach(() => exporter.reset());

/** The spans ended so far (the simple processor hands a span over asynchronously: flushed first). */
async function finished() {
  await provider.forceFlush();
  return exporter.getFinishedSpans();
}
const statementSpans = async () => (await finished()).filter((s) => s.name.startsWith('pg.query'));

describe('a span per PostgreSQL statement', () => {
  it('is a CLIENT child of the active span, with the parameterised text, operation, database and pool', async () => {
    await tracer.startActiveSpan('request', async (parent) => {
      await db.query('SELECT $1::text AS v', ['a secret value']);
      parent.end();
    });
    const [span] = await statementSpans();
    const parent = (await finished()).find((s) => s.name === 'request')!;
    expect(await statementSpans()).toHaveLength(1);
    expect(span!.name).toBe(`pg.query:SELECT ${database}`);
    expect(span!.kind).toBe(SpanKind.CLIENT);
    expect(span!.parentSpanContext?.spanId).toBe(parent.spanContext().spanId);
    expect(span!.spanContext().traceId).toBe(parent.spanContext().traceId);
    expect(span!.attributes).toMatchObject({
      'db.system.name': 'postgresql',
      'db.namespace': database,
      'db.operation.name': 'SELECT',
      'db.query.text': 'SELECT $1::text AS v',
      'db.client.connection.pool.name': 'main',
    });
    expect(typeof span!.attributes['server.port']).toBe('number');
    expect(JSON.stringify(span!.attributes)).not.toContain('a secret value');
    expect(span!.status.code).toBe(SpanStatusCode.UNSET);
  });

  it("marks a failed statement as an error with its SQLSTATE, and still throws the database's error", async () => {
    await tracer.startActiveSpan('request', async (parent) => {
      await expect(db.query('SELECT * FROM no_such_table_for_spans')).rejects.toThrow(/no_such_table_for_spans/);
      parent.end();
    });
    const [span] = await statementSpans();
    expect(span!.status.code).toBe(SpanStatusCode.ERROR);
    expect(span!.attributes['db.response.status_code']).toBe('42P01');
    expect(span!.attributes['error.type']).toBe('42P01');
  });

  it('spans each statement of a transaction, BEGIN and COMMIT included, under the same parent', async () => {
    await tracer.startActiveSpan('request', async (parent) => {
      await db.transaction(async (tx) => {
        await tx.query('SELECT 1');
        await tx.query('SELECT $1::int', [2]);
      });
      parent.end();
    });
    expect((await statementSpans()).map((s) => s.attributes['db.operation.name'])).toEqual(['BEGIN', 'SELECT', 'SELECT', 'COMMIT']);
    expect(new Set((await statementSpans()).map((s) => s.parentSpanContext?.spanId)).size).toBe(1);
  });

  it('makes none outside a trace, nor in a trace the sampler dropped', async () => {
    await db.query('SELECT 1');
    const unsampled = trace.setSpanContext(ROOT_CONTEXT, {
      traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
      spanId: '00f067aa0ba902b7',
      traceFlags: TraceFlags.NONE,
      isRemote: true,
    });
    await context.with(unsampled, () =>
      tracer.startActiveSpan('dropped request', async (parent) => {
        expect(parent.isRecording()).toBe(false);
        await db.query('SELECT $1::int', [1]);
        parent.end();
      }),
    );
    expect((await finished()).map((s) => s.name)).toEqual([]);
  });
});
