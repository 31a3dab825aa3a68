/**
 * What every grant handler of POST /oauth/token works with: the request's context (form, client,
 * address), the service's dependencies, the success body, and `refuse`, which records a refused
 * request in the audit log and returns the error to throw.
 */
import type { FastifyRequest } from 'fastify';
import type { Database, Queryable } from '@codelab/service-kit';
import { writeAudit, type AuditEvent, type AuditEventType } from '../audit.ts';
import type { OAuthClient } from '../clients.ts';
import type { AuthConfig } from '../config.ts';
import { oauthErrors, type OAuthError } from '../errors.ts';
import type { FormBody } from '../form-body.ts';
import type { AuthMetrics, GrantTypeLabel } from '../metrics.ts';
import type { TokenVerifier } from '../token-verifier.ts';
import type { TokenIssuer } from '../tokens.ts';

export interface TokenRequestContext {
  readonly request: FastifyRequest;
  readonly form: FormBody;
  readonly grantType: GrantTypeLabel;
  /** The client's address (audit, limits). */
  readonly ip: string;
  /** The client the request claims to be, once its credentials are read. */
  clientId?: string;
  /** The user concerned, once known (password and refresh grants). */
  userId?: string;
  /** Why the request was refused (bounded words: wrong_password, reuse_detected, …), for the audit log and hooks. */
  failureReason?: string;
}

export interface GrantDeps {
  db: Database;
  tokens: TokenIssuer;
  verifier: TokenVerifier;
  metrics: AuthMetrics;
  config: Pick<AuthConfig, 'accessTokenLifetime' | 'refreshTokenLifetime'>;
}

/** RFC 6749 §5.1 (a client_credentials answer has no refresh_token, §4.4.3). */
interface TokenResponseBody {
  access_token: string;
  refresh_token?: string;
  token_type: 'bearer';
  expires_in: number;
  scope: string;
}

export type GrantHandler = (deps: GrantDeps, ctx: TokenRequestContext, client: OAuthClient) => Promise<TokenResponseBody>;

/** The audit event a refused request of each grant is recorded as. */
const FAILURE_EVENT: Record<GrantTypeLabel, AuditEventType | undefined> = {
  password: 'login_failed',
  refresh_token: 'token_refresh',
  client_credentials: 'client_credentials',
  authorization_code: undefined,
  other: undefined,
};

/** The audit row of this request's success, written in the transaction that issues its tokens (both or neither). */
export function auditSuccess(
  tx: Queryable,
  ctx: TokenRequestContext,
  event: Omit<AuditEvent, 'clientId' | 'ipAddress' | 'userAgent' | 'success'> & { clientId: string },
): Promise<void> {
  return writeAudit(tx, { ...event, success: true, ipAddress: ctx.ip, userAgent: ctx.request.headers['user-agent'] });
}

/** Writes an audit row for this request; a failed write is logged, never thrown (the answer stands). */
export async function auditRequest(
  db: Database,
  ctx: TokenRequestContext,
  event: Omit<AuditEvent, 'clientId' | 'ipAddress' | 'userAgent'>,
): Promise<void> {
  try {
    await writeAudit(db, {
      ...event,
      clientId: ctx.clientId ?? ctx.form.client_id,
      ipAddress: ctx.ip,
      userAgent: ctx.request.headers['user-agent'],
    });
  } catch (err) {
    ctx.request.log.error({ err, event_type: event.eventType }, 'audit log write failed');
  }
}

/**
 * Records a refused request (audit row of the grant's failure event, log line) and returns the
 * error to throw. The password grant's rows carry the username tried (never the password).
 */
export async function refuse(
  db: Database,
  ctx: TokenRequestContext,
  reason: string,
  error: OAuthError,
  opts: { eventType?: AuditEventType; eventData?: Record<string, unknown> } = {},
): Promise<OAuthError> {
  ctx.failureReason = reason;
  ctx.request.log.info({ client_id: ctx.clientId, grant_type: ctx.grantType, reason }, 'token request refused');
  const eventType = opts.eventType ?? FAILURE_EVENT[ctx.grantType];
  if (eventType) {
    const username = ctx.grantType === 'password' ? { username: ctx.form.username?.slice(0, 255) } : {};
    await auditRequest(db, ctx, {
      eventType,
      success: false,
      userId: ctx.userId,
      eventData: { ...username, reason, ...opts.eventData },
      errorMessage: error.message,
    });
  }
  return error;
}

/** unauthorized_client unless the client may use this grant. */
export async function requireGrant(db: Database, ctx: TokenRequestContext, client: OAuthClient, grantType: string): Promise<void> {
  if (!client.allowedGrantTypes.includes(grantType)) {
    throw await refuse(
      db,
      ctx,
      'unauthorized_client',
      oauthErrors.unauthorized_client(`Client '${client.clientId}' may not use the ${grantType} grant`),
    );
  }
}
