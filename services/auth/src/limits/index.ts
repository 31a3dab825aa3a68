/**
 * Brute-force defence and rate limits of the auth service: the whole public surface of limits/.
 * One store (Redis, or per-instance memory while Redis is unreachable) serves the login guard and
 * every rate limiter; the client IP comes from the trusted-proxy resolver.
 */
export { canonicalIp, clientKey, createClientIpResolver } from './client-ip.ts';
export type { ClientIpResolver } from './client-ip.ts';
export { createLimiterStore, LIMITER_STORE_DEFAULTS } from './limiter-store.ts';
export type { LimiterStore, LimiterStoreOptions } from './limiter-store.ts';
export { limitsMetrics } from './limits-metrics.ts';
export type { LimiterBackend, LimitsMetrics, LockScope } from './limits-metrics.ts';
export { createLoginGuard, LOGIN_GUARD_DEFAULTS, normalizeUsername } from './login-guard.ts';
export type { FailureOutcome, LockStatus, LoginGuard, LoginGuardOptions } from './login-guard.ts';
export { createRateLimiter } from './rate-limiter.ts';
export type { RateLimiter, RateLimiterOptions, RateLimitResult } from './rate-limiter.ts';
