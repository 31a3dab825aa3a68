/**
 * `GET /sessions/:id/pending-approvals` (upstream §3): the tool calls of a session that wait for
 * the user's decision, oldest first, so that an IDE that restarted can show the dialogs again.
 * Calls whose approval has expired are left out (they can no longer be approved). Unlike
 * upstream, an unknown session, or another user's, answers 404.
 */
import type { FastifyInstance } from 'fastify';
import { SESSION_ID_PATTERN, type PendingApproval, type PendingApprovalList } from '@codelab/protocol';
import type { Database } from '@codelab/service-kit';
import { runtimeErrors } from '../errors.ts';
import type { SessionStore } from '../store/sessions.ts';
import { callerOf } from './sessions.ts';

export function registerApprovalRoutes(app: FastifyInstance, deps: { db: Database; store: SessionStore }): void {
  app.get<{ Params: { sessionId: string } }>(
    '/sessions/:sessionId/pending-approvals',
    {
      schema: {
        params: { type: 'object', required: ['sessionId'], properties: { sessionId: { type: 'string', pattern: SESSION_ID_PATTERN } } },
      },
    },
    async (request): Promise<PendingApprovalList> => {
      const { sessionId } = request.params;
      const session = await deps.store.get(sessionId, callerOf(request));
      if (!session) throw runtimeErrors.RT_ERR_SESSION_NOT_FOUND(`Session ${sessionId} not found`);
      const { rows } = await deps.db.query<{
        call_id: string;
        tool_name: string;
        arguments: Record<string, unknown>;
        approval_reason: string | null;
        created_at: Date;
        expires_at: Date | null;
      }>(
        `SELECT call_id, tool_name, arguments, approval_reason, created_at, expires_at FROM tool_calls
         WHERE session_id = $1 AND status = 'pending_approval' AND (expires_at IS NULL OR expires_at > now())
         ORDER BY created_at, batch, position`,
        [session.id],
      );
      const pending: PendingApproval[] = rows.map((r) => ({
        request_id: r.call_id,
        request_type: 'tool',
        subject: r.tool_name,
        details: { arguments: r.arguments },
        reason: r.approval_reason,
        created_at: r.created_at.toISOString(),
        call_id: r.call_id,
        tool_name: r.tool_name,
        arguments: r.arguments,
        expires_at: r.expires_at ? r.expires_at.toISOString() : null,
      }));
      return { session_id: session.id, pending_approvals: pending, count: pending.length };
    },
  );
}
