/** The event store's pure parts: upstream's categories, and writes that never reject even when the database is gone. */
import { describe, expect, it } from 'vitest';
import { ServiceMetrics, type Database } from '@codelab/service-kit';
import { silentLogger } from '@codelab/service-kit/testing';
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
