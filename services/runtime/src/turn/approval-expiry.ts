/**
 * Approvals do not wait forever: every few seconds, approvals past AGENT_RUNTIME__APPROVAL_TIMEOUT
 * are rejected with reason `expired` and answered for the LLM. Each session is handled under its
 * lease (a running turn of that session is left alone until the next sweep), so any number of
 * instances can sweep at once: the conditional UPDATE lets one of them win each approval.
 */
import type { Logger } from 'pino';
import { expireApprovals } from './conversation.ts';
import type { SessionLeases } from './session-lease.ts';
import type { ConversationServices } from './turn-context.ts';

export function startApprovalExpiry(services: ConversationServices, leases: SessionLeases, logger: Logger): { stop: () => Promise<void> } {
  const everyMs = Math.min(5000, Math.max(50, services.approvalTimeoutMs / 4));
  let running: Promise<void> | undefined;
  const sweep = async (): Promise<void> => {
    for (const sessionId of await services.toolCalls.sessionsWithExpiredApprovals()) {
      let lease;
      try {
        lease = await leases.acquire(sessionId, 0);
      } catch {
        continue; // a turn of the session runs now; the next sweep takes it
      }
      try {
        const expired = await expireApprovals(services, sessionId);
        if (expired.length) logger.info({ session_id: sessionId, calls: expired.map((r) => r.call_id) }, 'approvals expired; rejected');
      } finally {
        await lease.release();
      }
    }
  };
  const timer = setInterval(() => {
    if (running) return;
    running = sweep()
      .catch((err: unknown) => logger.warn({ err }, 'approval expiry sweep failed'))
      .finally(() => (running = undefined));
  }, everyMs);
  timer.unref();
  return {
    stop: async () => {
      clearInterval(timer);
      await running;
    },
  };
}
