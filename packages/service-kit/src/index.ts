export {
  ConfigError,
  commonSettings,
  defineSettings,
  envName,
  isPlaceholderSecret,
  loadConfigOrExit,
  pinoLevel,
  readConfig,
  setting,
} from './config.ts';
export type { SettingSpec } from './config.ts';
export { AppError, defineErrors, kitErrors } from './errors.ts';
export type { ErrorDef, ErrorFactory } from './errors.ts';
export { createLogger, loggerOptions, redactSecrets, redactUrl, SECRET_KEYS } from './logger.ts';
export type { LoggerSettings } from './logger.ts';
export {
  DB_DURATION_BUCKETS,
  fineBuckets,
  GENAI_TOKEN_BUCKETS,
  HTTP_DURATION_BUCKETS,
  OPERATION_DURATION_BUCKETS,
  TPOT_BUCKETS,
  TTFT_BUCKETS,
  ServiceMetrics,
} from './metrics.ts';
export { createService } from './service.ts';
export type { ReadinessCheck, Service, ServiceOptions } from './service.ts';
export { listen, runService, stopService } from './run.ts';
export type { RunOptions } from './run.ts';
export { endServerSpan } from './http-spans.ts';
export { startSpan } from './spans.ts';
export type { ServerSpan } from './http-spans.ts';
export { startTracing, shutdownTracing, tracingEnabled, tracingRequested } from './tracing.ts';
export { activeTraceIds, fallbackTraceIds, parseTraceparent } from './trace-context.ts';
export type { TraceIds } from './trace-context.ts';
export { checkInternalKey, INTERNAL_AUTH_HEADER } from './internal-auth.ts';
export { H2C_CONNECTION_TTL_MS, H2C_PING_INTERVAL_MS, isJsonType, parseAnswer, PeerClient, PeerUnavailableError } from './http-client.ts';
export { createH2cCapableServer, H2C_MAX_STREAMS, isH2cPreface } from './h2c.ts';
export { H2cPool } from './h2c-pool.ts';
export type { PeerOptions, PeerRequest, PeerResponse } from './http-client.ts';
export { parseSse, sseEventsIn, sseRuns, startSse } from './sse.ts';
export type { SseEvent, SseWriter } from './sse.ts';
export {
  EmbeddedDatabaseBusyError,
  EmbeddedEngineMissingError,
  embeddedDatabaseDir,
  embeddedLockFile,
  loadMigrations,
  migrate,
  openDatabase,
  openEmbeddedDatabase,
  readEmbeddedLock,
  startEmbeddedPostgres,
} from './db.ts';
export type { Database, DatabaseOptions, EmbeddedDatabase, Queryable } from './db.ts';
export { isDatabaseUnavailable } from './db-errors.ts';
export { runMigrations } from './migrate-command.ts';
export type { MigrationCommand } from './migrate-command.ts';
export { openRedis, pingRedis } from './redis.ts';
export { boot } from './boot.ts';
