/**
 * Metrics of the brute-force defence and rate limits, on the service's registry. Labels are
 * bounded (a lock scope, an endpoint name chosen in code, a backend); usernames and addresses never
 * appear. Created once per registry, whichever of the store, guard or limiter asks first.
 */
import type { Counter, Gauge } from 'prom-client';
import type { ServiceMetrics } from '@codelab/service-kit';

export type LockScope = 'username' | 'ip';
export type LimiterBackend = 'redis' | 'memory';

export interface LimitsMetrics {
  lockouts: Counter<'scope'>;
  rateLimited: Counter<'endpoint'>;
  backend: Gauge<'backend'>;
  redisErrors: Counter;
}

const created = new WeakMap<ServiceMetrics, LimitsMetrics>();

export function limitsMetrics(metrics: ServiceMetrics): LimitsMetrics {
  let m = created.get(metrics);
  if (m) return m;
  m = {
    lockouts: metrics.counter<'scope'>({
      name: 'auth_lockouts_total',
      help: 'Login lockouts begun, by scope (username or client IP)',
      labelNames: ['scope'],
    }),
    rateLimited: metrics.counter<'endpoint'>({
      name: 'auth_rate_limited_total',
      help: 'Requests refused by a rate limit, by endpoint',
      labelNames: ['endpoint'],
    }),
    backend: metrics.gauge<'backend'>({
      name: 'auth_limiter_backend',
      help: 'Store the lockout and rate-limit counters use: 1 for the backend in use (redis or per-instance memory)',
      labelNames: ['backend'],
    }),
    redisErrors: metrics.counter({
      name: 'auth_limiter_redis_errors_total',
      help: 'Redis commands of the lockout and rate-limit counters that failed or timed out (answered from memory instead)',
    }),
  };
  // every bounded label value exists from the start, so dashboards and alerts see 0, not nothing
  for (const scope of ['username', 'ip'] as const) m.lockouts.inc({ scope }, 0);
  m.rateLimited.inc({ endpoint: 'token' }, 0);
  m.redisErrors.inc(0);
  created.set(metrics, m);
  return m;
}
