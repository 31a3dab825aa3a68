/** PromQL of the auth dashboard: token requests and issuance latency, brute-force defence, signing keys. */
import { quantile, sumRate } from '../lib.ts';

const GRANT = 'grant_type=~"$grant_type"';

/** Token requests per second by grant type and outcome (success or the RFC 6749 error code). */
export function tokenRequestsByOutcome(): string {
  return sumRate('auth_token_requests_total', ['grant_type', 'outcome'], GRANT);
}

/** Share of token requests answered with `server_error`, by grant type. */
export function tokenServerErrorRatio(): string {
  const all = sumRate('auth_token_requests_total', ['grant_type'], GRANT);
  const errors = sumRate('auth_token_requests_total', ['grant_type'], `${GRANT}, outcome="server_error"`);
  return `(${errors} or ${all} * 0) / ${all}`;
}

/** The q-quantile of successful token issuance latency, by grant type. */
export function issueDuration(q: number): string {
  return quantile(q, 'auth_token_issue_duration_seconds', ['grant_type'], GRANT);
}

/** Login lockouts begun per second, by scope (username or client IP). */
export function lockoutsByScope(): string {
  return sumRate('auth_lockouts_total', ['scope']);
}

/** Requests refused by a rate limit per second, by endpoint. */
export function rateLimitedByEndpoint(): string {
  return sumRate('auth_rate_limited_total', ['endpoint']);
}

/** Refresh tokens presented again after rotation or revocation, per second. */
export function refreshReuse(): string {
  return 'sum(rate(auth_refresh_reuse_detected_total[$__rate_interval]))';
}

/** Revocation requests per second by outcome. */
export function revocationsByOutcome(): string {
  return sumRate('auth_token_revocations_total', ['outcome']);
}

/** Age of the signing key in use. */
export function signingKeyAge(): string {
  return 'max(auth_signing_key_age_seconds)';
}

/** Public keys published in the JWKS (more than one during a rotation). */
export function jwksKeys(): string {
  return 'max(auth_jwks_keys)';
}

/** The store of the lockout and rate-limit counters: 1 for the backend in use. */
export function limiterBackend(): string {
  return 'max by (backend) (auth_limiter_backend)';
}

/** Failed Redis commands of the limiter per second (answered from memory instead). */
export function limiterRedisErrors(): string {
  return 'sum(rate(auth_limiter_redis_errors_total[$__rate_interval]))';
}

/** Audit rows deleted by the retention job, per second. */
export function auditRowsDeleted(): string {
  return 'sum(rate(auth_audit_rows_deleted_total[$__rate_interval]))';
}
