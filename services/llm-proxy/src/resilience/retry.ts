/**
 * Retry policy: only failures before any byte reached the client, and only those that another
 * attempt can fix (connect errors, 429, 5xx); full-jitter exponential backoff, an upstream's
 * `Retry-After` honoured when it is within the maximum delay.
 */
export interface RetryPolicy {
  maxRetries: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export function isRetryableStatus(status: number): boolean {
  return status === 429 || status >= 500;
}

/** Delay before retry number `attempt` (0-based): uniform in [0, min(max, base·2^attempt)]. */
export function backoffMs(policy: RetryPolicy, attempt: number, random: () => number = Math.random, retryAfterSeconds?: number): number {
  if (retryAfterSeconds !== undefined && retryAfterSeconds * 1000 <= policy.maxDelayMs) return retryAfterSeconds * 1000;
  const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
  return Math.round(random() * cap);
}
