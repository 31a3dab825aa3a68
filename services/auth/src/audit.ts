/**
 * Audit log rows (upstream §3.9): one per security-relevant event, with the client's address and
 * user agent. Credentials and tokens never go into event_data. Rows older than the retention are
 * deleted by audit-retention.ts.
 */
import type { Queryable } from '@codelab/service-kit';

/** Event types written to `audit_logs.event_type` (a text column: add new types here only). */
export type AuditEventType =
  | 'login_success'
  | 'login_failed'
  | 'token_refresh'
  | 'refresh_reuse_detected'
  | 'token_revoked'
  | 'client_credentials'
  | 'lockout'
  | 'rate_limited';

export interface AuditEvent {
  eventType: AuditEventType;
  success: boolean;
  userId?: string | undefined;
  clientId?: string | undefined;
  eventData?: Record<string, unknown>;
  ipAddress?: string | undefined;
  userAgent?: string | undefined;
  errorMessage?: string;
}

const clip = (value: string | undefined, max: number): string | null => (value === undefined ? null : value.slice(0, max));

export async function writeAudit(db: Queryable, event: AuditEvent): Promise<void> {
  await db.query(
    `INSERT INTO audit_logs (user_id, client_id, event_type, event_data, ip_address, user_agent, success, error_message)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
    [
      event.userId ?? null,
      clip(event.clientId, 255),
      event.eventType,
      event.eventData ? JSON.stringify(event.eventData) : null,
      clip(event.ipAddress, 45),
      clip(event.userAgent, 512),
      event.success,
      event.errorMessage ?? null,
    ],
  );
}
