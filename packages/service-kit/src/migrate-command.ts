/**
 * A service's migrations as a command of their own, `node services/<service>/src/migrate.ts`: the
 * Helm chart's pre-install/pre-upgrade Job runs it before any pod of the new version starts. It
 * applies what the database lacks under the same advisory lock the services take at start (so a
 * service starting meanwhile waits, then finds nothing to do), logs JSON lines (what it applied)
 * and answers the exit code: 0 done, 1 failed (the log says why). Never the embedded engine: a
 * migration Job without a PostgreSQL URL is a mistake, said as such.
 */
import { migrate, openDatabase, type Database } from './db.ts';
import { createLogger } from './logger.ts';
import { ServiceMetrics } from './metrics.ts';

export interface MigrationCommand {
  service: string;
  /** The service's database URL setting's value, and its name (for the message when it is missing). */
  url: string | undefined;
  urlSetting: string;
  /** The service's migrations folder. */
  dir: string;
  logLevel?: string;
  /** Logs somewhere else than stdout (tests). */
  destination?: NodeJS.WritableStream;
}

export async function runMigrations(opts: MigrationCommand): Promise<number> {
  const logger = createLogger({ service: opts.service, level: opts.logLevel ?? 'info', destination: opts.destination }).child({
    command: 'migrate',
  });
  if (!opts.url) {
    logger.error({ setting: opts.urlSetting }, `${opts.urlSetting} is not set: the migrations need the PostgreSQL server's URL`);
    return 1;
  }
  let db: Database | undefined;
  try {
    db = await openDatabase({
      service: opts.service,
      url: opts.url,
      urlSetting: opts.urlSetting,
      poolMax: 1,
      logger,
      metrics: new ServiceMetrics(`${opts.service}-migrate`),
    });
    const applied = await migrate(db, opts.service, opts.dir, logger);
    logger.info({ applied }, applied.length ? `${applied.length} migrations applied` : 'the database is up to date');
    return 0;
  } catch (err) {
    logger.error({ err: { message: (err as Error).message } }, 'migrations failed');
    return 1;
  } finally {
    await db?.close();
  }
}
