import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Database } from '@codelab/service-kit';
import { capturingLogger, silentLogger } from '@codelab/service-kit/testing';
import { writeAudit } from '../src/audit.ts';
import { deleteExpiredAuditRows, startAuditRetention } from '../src/audit-retention.ts';
import { buildTestApp, openTestDatabase } from './helpers.ts';

describe('audit retention', () => {
  let db: Database;
  beforeAll(async () => {
    db = await openTestDatabase();
  });
  afterAll(() => db.close());

  /** An audit row `ageDays` old, recognizable by its marker. */
  async function row(ageDays: number): Promise<string> {
    const marker = randomUUID();
    await writeAudit(db, { eventType: 'login_failed', success: false, eventData: { marker } });
    await db.query(`UPDATE audit_logs SET created_at = now() - make_interval(days => $2) WHERE event_data->>'marker' = $1`, [
      marker,
      ageDays,
    ]);
    return marker;
  }
  const exists = async (marker: string): Promise<boolean> =>
    ((await db.query(`SELECT 1 FROM audit_logs WHERE event_data->>'marker' = $1`, [marker])).rowCount ?? 0) > 0;

  describe('deleteExpiredAuditRows', () => {
    it('deletes rows older than the retention and keeps newer ones', async () => {
      const old = await row(91);
      const edge = await row(89);
      const fresh = await row(0);
      const deleted = await deleteExpiredAuditRows(db, 90);
      expect(deleted).toBeGreaterThanOrEqual(1);
      expect(await exists(old)).toBe(false);
      expect(await exists(edge)).toBe(true);
      expect(await exists(fresh)).toBe(true);
    });
  });

  describe('startAuditRetention', () => {
    it('runs after the first delay and then at every interval, and stops', async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'setInterval', 'clearTimeout', 'clearInterval'] });
      try {
        const fake = { query: vi.fn(async () => ({ rowCount: 0, rows: [] })) };
        const counts: number[] = [];
        const job = startAuditRetention({
          db: fake as never,
          retentionDays: 90,
          intervalMs: 60_000,
          firstRunDelayMs: 1000,
          logger: silentLogger(),
          onDeleted: (n) => counts.push(n),
        });
        await vi.advanceTimersByTimeAsync(999);
        expect(fake.query).not.toHaveBeenCalled();
        await vi.advanceTimersByTimeAsync(1);
        expect(fake.query).toHaveBeenCalledTimes(1);
        expect(fake.query.mock.calls[0]).toEqual([expect.stringContaining('DELETE FROM audit_logs'), [90, 5000]]);
        await vi.advanceTimersByTimeAsync(120_000);
        expect(fake.query).toHaveBeenCalledTimes(3);
        expect(counts).toEqual([0, 0, 0]);
        await job.stop();
        await vi.advanceTimersByTimeAsync(600_000);
        expect(fake.query).toHaveBeenCalledTimes(3);
      } finally {
        vi.useRealTimers();
      }
    });

    it('logs a failed run and keeps going', async () => {
      const { logger, lines } = capturingLogger();
      const fake = { query: vi.fn(async () => Promise.reject(new Error('database down'))) };
      const job = startAuditRetention({ db: fake as never, retentionDays: 1, intervalMs: 20, firstRunDelayMs: 0, logger });
      await vi.waitFor(() => expect(fake.query.mock.calls.length).toBeGreaterThanOrEqual(2));
      await job.stop();
      expect(lines().some((l) => l.msg === 'audit retention run failed; retrying at the next interval')).toBe(true);
    });
  });

  it('runs in the service, counted in auth_audit_rows_deleted_total', async () => {
    const old = await row(400);
    const testApp = await buildTestApp({ AUTH_SERVICE__AUDIT_RETENTION_DAYS: '365', AUTH_SERVICE__AUDIT_CLEANUP_INTERVAL: '1' });
    try {
      await vi.waitFor(async () => expect(await exists(old)).toBe(false), { timeout: 10_000, interval: 200 });
      const metrics = (await testApp.service.app.inject({ method: 'GET', url: '/metrics' })).body;
      expect(metrics).toMatch(/^auth_audit_rows_deleted_total [1-9]\d*$/m);
    } finally {
      await testApp.close();
    }
  });
});
