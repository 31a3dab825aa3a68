/**
 * Auth domain metrics, on the service's registry. Labels are bounded: the grant type is folded to
 * the known ones and the outcome is an RFC 6749 error code; usernames and addresses never appear.
 */
import { HTTP_DURATION_BUCKETS, type ServiceMetrics } from '@codelab/service-kit/metrics';
import type { OAuthErrorCode } from './errors.ts';

export const GRANT_TYPE_LABELS = ['password', 'refresh_token', 'client_credentials', 'authorization_code', 'other'] as const;
export type GrantTypeLabel = (typeof GRANT_TYPE_LABELS)[number];
export type TokenOutcome = 'success' | OAuthErrorCode;

const OUTCOMES: readonly TokenOutcome[] = [
  'success',
  'invalid_request',
  'invalid_client',
  'invalid_grant',
  'unauthorized_client',
  'unsupported_grant_type',
  'invalid_scope',
  'server_error',
];

export function grantTypeLabel(value: unknown): GrantTypeLabel {
  return GRANT_TYPE_LABELS.find((g) => g !== 'other' && g === value) ?? 'other';
}

export function createAuthMetrics(metrics: ServiceMetrics) {
  const tokenRequests = metrics.counter<'grant_type' | 'outcome'>({
    name: 'auth_token_requests_total',
    help: 'Requests to POST /oauth/token by grant type and outcome (success or the RFC 6749 error code)',
    labelNames: ['grant_type', 'outcome'],
  });
  const tokenIssueDuration = metrics.histogram<'grant_type'>({
    name: 'auth_token_issue_duration_seconds',
    help: 'Duration of successful token requests, from the parsed request to the signed and recorded token pair',
    labelNames: ['grant_type'],
    buckets: HTTP_DURATION_BUCKETS,
  });
  // Zero series for the grant in use, so that rates and ratios exist before the first failure.
  for (const outcome of OUTCOMES) tokenRequests.inc({ grant_type: 'password', outcome }, 0);
  return {
    tokenRequests,
    tokenIssueDuration,
    countTokenRequest(grantType: GrantTypeLabel, outcome: TokenOutcome): void {
      tokenRequests.inc({ grant_type: grantType, outcome });
    },
  };
}

export type AuthMetrics = ReturnType<typeof createAuthMetrics>;
