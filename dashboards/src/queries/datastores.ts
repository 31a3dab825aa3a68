/** PromQL of the data stores dashboard: PostgreSQL pools (USE) and query durations; the Redis behind the auth limiter. */
import { matchVar, quantile, sumRate } from '../lib.ts';

const SERVICE = matchVar('service');

/** Pool connections by service, pool and state (idle, used). */
export function connectionsByState(): string {
  return `sum by (service, pool, state) (db_client_connections{${SERVICE}})`;
}

/** The pool size limit, by service and pool. */
export function connectionsMax(): string {
  return `sum by (service, pool) (db_client_connections_max{${SERVICE}})`;
}

/** Share of the pool in use, by service and pool. */
export function poolUtilization(): string {
  return `sum by (service, pool) (db_client_connections{${SERVICE}, state="used"}) / sum by (service, pool) (db_client_connections_max{${SERVICE}})`;
}

/** Clients waiting for a pool connection (saturation), by service and pool. */
export function pendingRequests(): string {
  return `sum by (service, pool) (db_client_connection_pending_requests{${SERVICE}})`;
}

/** The q-quantile of query duration (including the wait for a connection), by service and operation. */
export function operationDuration(q: number): string {
  return quantile(q, 'db_client_operation_duration_seconds', ['service', 'operation'], SERVICE);
}

/** Queries per second by service, operation and outcome. */
export function operationRate(): string {
  return sumRate('db_client_operation_duration_seconds_count', ['service', 'operation', 'outcome'], SERVICE);
}

/** Share of queries that failed, by service. */
export function operationErrorRatio(): string {
  const all = sumRate('db_client_operation_duration_seconds_count', ['service'], SERVICE);
  const errors = sumRate('db_client_operation_duration_seconds_count', ['service'], `${SERVICE}, outcome!="ok"`);
  return `(${errors} or ${all} * 0) / ${all}`;
}

/** The auth limiter's store: 1 for the backend in use (redis, or per-instance memory when Redis is down or unset). */
export function limiterBackend(): string {
  return 'max by (backend) (auth_limiter_backend)';
}

/** Failed or timed-out Redis commands of the auth limiter per second. */
export function redisErrors(): string {
  return 'sum(rate(auth_limiter_redis_errors_total[$__rate_interval]))';
}
