/**
 * Audit retention: rows older than AUTH_SERVICE__AUDIT_RETENTION_DAYS are deleted by a periodic job
 * (first run 10 s after start, or after one interval when that is shorter, then every
 * AUTH_SERVICE__AUDIT_CLEANUP_INTERVAL seconds). Deletes go in batches so that a large backlog never
 * holds one long transaction. Every instance runs the job; two deleting the same rows is harmless.
 */
import type { Logger } from 'pino';
import type { Queryable } from '@codelab/service-kit';

/** Rows deleted per statement. */
const BATCH_SIZE = 5000;
/** The first run waits this long after start, off the start-up path. */
const FIRST_RUN_DELAY_MS = 10_000;

/** Deletes audit rows created more than `retentionDays` days ago; returns how many. */
export async function deleteExpiredAuditRows(db: Queryable, retentionDays: number): Promise<number> {
  let deleted = 0;
  for (;;) {
    const { rowCount } = await db.query(
      `DELETE FROM audit_logs WHERE id IN (
         SELECT id FROM audit_logs WHERE created_at < now() - make_interval(days => $1) LIMIT $2)`,
      [retentionDays, BATCH_SIZE],
    );
    deleted += rowCount ?? 0;
    if ((rowCount ?? 0) < BATCH_SIZE) return deleted;
  }
}

export interface AuditRetentionOptions {
  db: Queryable;
  retentionDays: number;
  intervalMs: number;
  firstRunDelayMs?: number;
  logger: Logger;
  /** Called with the number of rows each run deleted. */
  onDeleted?: (count: number) => void;
}

export interface AuditRetentionJob {
  /** Runs the cleanup now (runs never overlap). */
  runOnce(): Promise<number>;
  /** Stops the timers and waits for a run in progress. */
  stop(): Promise<void>;
}

export function startAuditRetention(opts: AuditRetentionOptions): AuditRetentionJob {
  let running: Promise<number> | undefined;
  let stopped = false;

  const runOnce = (): Promise<number> => {
    running ??= deleteExpiredAuditRows(opts.db, opts.retentionDays)
      .then((count) => {
        opts.onDeleted?.(count);
        if (count > 0) opts.logger.info({ deleted: count, retention_days: opts.retentionDays }, 'deleted expired audit rows');
        return count;
      })
      .finally(() => {
        running = undefined;
      });
    return running;
  };
  const tick = (): void => {
    if (stopped) return;
    runOnce().catch((err: unknown) => opts.logger.warn({ err }, 'audit retention run failed; retrying at the next interval'));
  };

  // unref'd: the job never keeps the process alive.
  const first = setTimeout(tick, opts.firstRunDelayMs ?? Math.min(FIRST_RUN_DELAY_MS, opts.intervalMs)).unref();
  const interval = setInterval(tick, opts.intervalMs).unref();
  return {
    runOnce,
    async stop() {
      stopped = true;
      clearTimeout(first);
      clearInterval(interval);
      await running?.catch(() => undefined);
    },
  };
}
