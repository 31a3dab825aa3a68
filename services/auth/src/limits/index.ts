/**
 * Brute-force defence and rate limits of the auth service: what the rest of the service uses of
 * limits/. One store (Redis, or per-instance memory while Redis is unreachable) serves the login guard and
 * every rate limiter; the client IP comes from the trusted-proxy resolver.
 */
export { clientKey, createClientIpResolver } from './client-ip.ts';
export { createLimiterStore } from './limiter-store.ts';
export type { LimiterStore } from './limiter-store.ts';
export { createLoginGuard } from './login-guard.ts';
export type { LoginGuard } from './login-guard.ts';
export { createRateLimiter } from './rate-limiter.ts';
export type { RateLimiter } from './rate-limiter.ts';
