/**
 * Auth domain metrics, on the service's registry. Labels are bounded: the grant type is folded to
 * the known ones and the outcome is an RFC 6749 error code or a fixed word; usernames, client ids
 * and addresses never appear.
 */
import { HTTP_DURATION_BUCKETS, type ServiceMetrics } from '@codelab/service-kit';
import type { OAuthErrorCode } from './errors.ts';

export const GRANT_TYPE_LABELS = ['password', 'refresh_token', 'client_credentials', 'authorization_code', 'other'] as const;
export type GrantTypeLabel = (typeof GRANT_TYPE_LABELS)[number];
export type TokenOutcome = 'success' | OAuthErrorCode;

const TOKEN_OUTCOMES: readonly TokenOutcome[] = [
  'success',
  'invalid_request',
  'invalid_client',
  'invalid_grant',
  'unauthorized_client',
  'unsupported_grant_type',
  'invalid_scope',
  'server_error',
];
/** Grants whose series exist from the start (zero), so that rates and ratios exist before the first failure. */
const IMPLEMENTED_GRANTS: readonly GrantTypeLabel[] = ['password', 'refresh_token', 'client_credentials'];

/**
 * Outcomes of POST /oauth/revoke: `revoked` (a refresh token and its descendants), `unknown_token`
 * (invalid, expired or not ours: 200 with nothing done), `access_token` (unsupported_token_type),
 * or the error code of a refused request.
 */
export const REVOCATION_OUTCOMES = [
  'revoked',
  'unknown_token',
  'access_token',
  'invalid_grant',
  'invalid_client',
  'invalid_request',
  'server_error',
] as const;
export type RevocationOutcome = (typeof REVOCATION_OUTCOMES)[number];

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
    help: 'Duration of successful token requests, from the parsed request to the signed and recorded token(s)',
    labelNames: ['grant_type'],
    buckets: HTTP_DURATION_BUCKETS,
  });
  const refreshReuseDetected = metrics.counter({
    name: 'auth_refresh_reuse_detected_total',
    help: 'Refresh tokens presented again after rotation or revocation (each revokes its lineage)',
  });
  const revocations = metrics.counter<'outcome'>({
    name: 'auth_token_revocations_total',
    help: 'Requests to POST /oauth/revoke by outcome',
    labelNames: ['outcome'],
  });
  const auditRowsDeleted = metrics.counter({
    name: 'auth_audit_rows_deleted_total',
    help: 'Audit rows deleted by the retention job (older than AUTH_SERVICE__AUDIT_RETENTION_DAYS)',
  });
  for (const grantType of IMPLEMENTED_GRANTS) {
    for (const outcome of TOKEN_OUTCOMES) tokenRequests.inc({ grant_type: grantType, outcome }, 0);
  }
  for (const outcome of REVOCATION_OUTCOMES) revocations.inc({ outcome }, 0);
  return {
    tokenRequests,
    tokenIssueDuration,
    refreshReuseDetected,
    revocations,
    auditRowsDeleted,
    countTokenRequest(grantType: GrantTypeLabel, outcome: TokenOutcome): void {
      tokenRequests.inc({ grant_type: grantType, outcome });
    },
  };
}

export type AuthMetrics = ReturnType<typeof createAuthMetrics>;
