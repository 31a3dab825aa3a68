/**
 * POST /agent/message/stream: one inbound IDE message in, its turn out as SSE (`data: <chunk>`).
 *
 * 1. The session: the given id (created on first use, owned by the caller), or a new one for
 *    `new_session` (then the first frame is `session_info` with its id).
 * 2. The session lease: one turn per session at a time across every instance (409 when another
 *    turn keeps it past AGENT_RUNTIME__SESSION_LOCK_TIMEOUT).
 * 3. `prepare` checks the message against the session's state: a bad message is a 4xx and
 *    changes nothing.
 * 4. The turn streams its frames, numbered per session and kept in the frame log; every outcome
 *    ends with a frame whose `is_final` is true. A caller that goes away does not stop the turn
 *    (it is completed, stored and logged for a reconnect); a `cancel` does. The response says the
 *    number before the turn's first frame (`x-codelab-frame-seq`): a caller whose stream breaks
 *    follows the frame log from there, and gets the turn's end even when this instance dies (a
 *    lapsed turn lease is closed with RT_ERR_TURN_INTERRUPTED, interrupted-turns.ts).
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { AppError, kitErrors, startSse } from '@codelab/service-kit';
import { SESSION_ID_PATTERN, type AgentStreamRequest } from '@codelab/protocol';
import { FRAME_SEQ_HEADER } from '@codelab/protocol/ws-frames';
import { runtimeErrors } from '../errors.ts';
import { agentLabel } from '../metrics.ts';
import type { SessionStore } from '../store/sessions.ts';
import { cancelled, isCancelled, type TurnOutcome } from '../turn/agent-loop.ts';
import { prepare, validateMessage } from '../turn/conversation.ts';
import type { InterruptedTurns } from '../turn/interrupted-turns.ts';
import { LeaseLostError, type RunningTurns } from '../turn/running-turns.ts';
import { SessionBusyError, type SessionLeases } from '../turn/session-lease.ts';
import { TurnContext, type ConversationServices } from '../turn/turn-context.ts';
import { callerOf } from './sessions.ts';

export interface AgentStreamDeps {
  services: ConversationServices;
  store: SessionStore;
  leases: SessionLeases;
  running: RunningTurns;
  interrupted: InterruptedTurns;
  heartbeatMs: number;
  lockTimeoutMs: number;
  isDraining: () => boolean;
}

const bodySchema = {
  type: 'object',
  required: ['message'],
  properties: {
    session_id: { type: 'string', pattern: SESSION_ID_PATTERN },
    new_session: { type: 'boolean' },
    message: { type: 'object', required: ['type'], properties: { type: { type: 'string' } } },
  },
} as const;

export function registerAgentStream(app: FastifyInstance, deps: AgentStreamDeps): void {
  const { services } = deps;
  app.post<{ Body: AgentStreamRequest }>('/agent/message/stream', { schema: { body: bodySchema }, config: { streaming: true } }, async (request, reply) => {
    const { message } = request.body;
    if (deps.isDraining()) throw kitErrors.ERR_SHUTTING_DOWN('The runtime is shutting down; retry on another instance');
    validateMessage(services, message);
    const caller = callerOf(request);
    const started = performance.now();
    let sessionId = request.body.session_id;
    const created = request.body.new_session === true;
    // the common case is one statement: an existing session of the caller's, free
    let lease = !created && sessionId ? await deps.leases.tryAcquire(sessionId, caller, { turn: true }) : undefined;
    if (!lease) {
      if (created) {
        sessionId = randomUUID();
        await deps.store.create(sessionId, caller ?? null);
      } else {
        if (!sessionId) throw runtimeErrors.RT_ERR_INVALID_MESSAGE('session_id is required (or new_session: true)');
        if (!(await deps.store.getOrCreate(sessionId, caller))) throw runtimeErrors.RT_ERR_SESSION_NOT_FOUND(`Session ${sessionId} not found`);
      }
      try {
        lease = await deps.leases.acquire(sessionId!, deps.lockTimeoutMs, { turn: true });
      } catch (err) {
        if (err instanceof SessionBusyError) throw runtimeErrors.RT_ERR_SESSION_BUSY(err.message);
        throw err;
      }
    }
    sessionId = sessionId!;
    let outcome: TurnOutcome | 'refused' | 'lease_lost' = 'refused';
    let agent = lease.session.current_agent;
    let frameSeq = 0;
    const held = lease;
    services.metrics.activeTurns.inc();
    try {
      const [run, lastSeq] = await Promise.all([
        prepare(services, sessionId, lease.session, message),
        deps.interrupted.beforeTurn(sessionId, lease).catch(() => held.session.frame_seq),
      ]);
      const sse = startSse(reply, { [FRAME_SEQ_HEADER]: String(lastSeq) });
      const heartbeat = setInterval(() => void sse.comment('keepalive'), deps.heartbeatMs);
      const turn = deps.running.begin(sessionId);
      const onLost = (): void => turn.stop(new LeaseLostError());
      lease.lost.addEventListener('abort', onLost, { once: true });
      services.frameLog.setRunning(sessionId, true);
      const log = request.log.child({ session_id: sessionId });
      const t = new TurnContext(
        services,
        sessionId,
        randomUUID(),
        lease.session.current_agent,
        lastSeq,
        turn.signal,
        log,
        async (data) => {
          if (!sse.closed) await sse.raw(`data: ${data}\n\n`);
        },
        lease,
      );
      try {
        if (created) await t.emit({ type: 'session_info', session_id: sessionId, content: `Session ${sessionId} created`, is_final: false });
        outcome = await run(t);
      } catch (err) {
        if (isCancelled(turn.signal)) {
          outcome = await cancelled(t, undefined, '').catch(() => 'cancelled' as const);
        } else if (!lease.held) {
          outcome = 'lease_lost';
        } else {
          outcome = 'error';
          request.log.error({ err, session_id: sessionId }, 'turn failed');
          const e = err instanceof AppError ? err : runtimeErrors.RT_ERR_INTERNAL(runtimeErrors.RT_ERR_INTERNAL.def.message);
          await t.emit({ type: 'error', error: e.message, content: e.message, code: e.code, is_final: true }).catch(() => undefined);
        }
      } finally {
        agent = t.agent;
        clearInterval(heartbeat);
        lease.lost.removeEventListener('abort', onLost);
        turn.end();
        if (!lease.held) {
          // another lease took the session: this turn stops without a final frame (its followers
          // get the closing frame from the log)
          outcome = 'lease_lost';
          log.warn('session lease taken over during the turn (renewals failed for AGENT_RUNTIME__SESSION_LEASE_TTL); the turn stopped');
        }
        // (a hint only: a follower that finds it gone asks the lease)
        services.frameLog.setRunning(sessionId, false);
        frameSeq = t.lastSeq;
        sse.end();
        // the final frame is in the log before the session is given up: a follower that finds the
        // lease free and the log unfinished may then take the turn for interrupted
        await services.frameLog.flush().catch(() => undefined);
        services.events.record({ type: 'agent.processing.completed', sessionId, correlationId: t.correlationId, data: { agent, duration_ms: performance.now() - started, success: outcome !== 'error' && outcome !== 'llm_error' && outcome !== 'persistence_error' && outcome !== 'lease_lost' } });
      }
    } finally {
      await lease.release(frameSeq).catch((err: unknown) => request.log.warn({ err }, 'session lease not released; it expires on its own (the frame number is taken from the frame log then)'));
      services.metrics.activeTurns.dec();
      services.metrics.turns.inc({ type: message.type, agent: agentLabel(agent), outcome });
      services.metrics.turnDuration.observe({ type: message.type, outcome }, (performance.now() - started) / 1000);
    }
  });
}
