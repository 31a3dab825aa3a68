/**
 * One turn of a session, owned by one object from start to finish.
 *
 * `start` takes the session lease (409 when another turn keeps it past
 * AGENT_RUNTIME__SESSION_LOCK_TIMEOUT), checks the message against the session's state (a bad
 * message is a 4xx that changes nothing), then opens the SSE response (`x-codelab-frame-seq`: the
 * number before the turn's first frame), registers the cancel signal (running-turns.ts), flags the
 * turn running in the frame log and starts the heartbeat. `run` runs the turn; every outcome ends
 * with a frame whose `is_final` is true. `finish` undoes all of `start`, exactly once, and records
 * the turn's metrics and its `agent.processing.completed` event.
 *
 * A caller that goes away does not stop the turn (it is completed, stored and logged for a
 * reconnect); a `cancel` does. So does losing the lease (a renewal finds another owner, a fenced
 * write or frame is refused): the turn is aborted and writes nothing more — no frame, no message,
 * no tool call (fenced-db.ts, the frame log's fence) — and ends without a final frame; whoever took
 * the session over closes the turn for its followers (interrupted-turns.ts).
 */
import { randomUUID } from 'node:crypto';
import type { FastifyBaseLogger, FastifyReply } from 'fastify';
import { AppError, startSse, type SseWriter } from '@codelab/service-kit';
import { FRAME_SEQ_HEADER, type TurnFrame } from '@codelab/protocol';
import { runtimeErrors } from '../errors.ts';
import { agentLabel } from '../metrics.ts';
import type { NewEvent } from '../store/event-writer.ts';
import type { Caller, SessionStore } from '../store/sessions.ts';
import { cancelled, isCancelled, type TurnOutcome } from './agent-loop.ts';
import { prepare, type PreparedTurn } from './conversation.ts';
import { fencedServices } from './fenced-db.ts';
import type { InterruptedTurns } from './interrupted-turns.ts';
import type { RunningTurns } from './running-turns.ts';
import { LeaseLostError, SessionBusyError, type Lease, type SessionLeases } from './session-lease.ts';
import { TurnContext, type ConversationServices } from './turn-context.ts';

export interface TurnRunnerDeps {
  services: ConversationServices;
  store: SessionStore;
  leases: SessionLeases;
  running: RunningTurns;
  interrupted: InterruptedTurns;
  heartbeatMs: number;
  lockTimeoutMs: number;
}

export interface TurnRequest {
  message: TurnFrame;
  /** The session the caller names (created on first use, owned by the caller). */
  sessionId: string | undefined;
  /** A new session: its first frame is `session_info` with its id. */
  newSession: boolean;
  caller: Caller;
  log: FastifyBaseLogger;
}

/** How a turn ended (the turns metric's `outcome`): its final frame, refused before the stream, or its lease lost. */
export type TurnEnd = TurnOutcome | 'refused' | 'lease_lost';

const FAILED: readonly TurnEnd[] = ['error', 'llm_error', 'persistence_error', 'lease_lost'];

/** What `start` set up once the stream is open, for `run` and `finish`. */
interface Streaming {
  t: TurnContext;
  prepared: PreparedTurn;
  sse: SseWriter;
  heartbeat: ReturnType<typeof setInterval>;
  cancel: ReturnType<RunningTurns['begin']>;
  onLost: () => void;
}

export class TurnRunner {
  private readonly deps: TurnRunnerDeps;
  private readonly req: TurnRequest;
  private readonly started = performance.now();
  private sessionId = '';
  private lease: Lease | undefined;
  private streaming: Streaming | undefined;
  private finishing: Promise<TurnEnd> | undefined;

  constructor(deps: TurnRunnerDeps, req: TurnRequest) {
    this.deps = deps;
    this.req = req;
  }

  /** Takes the session and opens the turn's stream; a 4xx (thrown) leaves nothing taken. */
  async start(reply: FastifyReply): Promise<void> {
    const { services, interrupted, running } = this.deps;
    const lease = await this.takeLease();
    const sessionId = this.sessionId;
    this.lease = lease;
    services.metrics.activeTurns.inc();
    const correlationId = randomUUID();
    // every write of the turn is fenced by its lease, from the checks of `prepare` on
    const fenced = fencedServices(services, lease);
    let prepared: PreparedTurn;
    let lastSeq: number;
    try {
      [prepared, lastSeq] = await Promise.all([
        prepare(fenced, sessionId, lease.session, this.req.message),
        interrupted.beforeTurn(sessionId, lease).catch(() => lease.session.frame_seq),
        // fences off the frames of any older lease of the session (its appends report their own failures)
        services.frameLog.claim(sessionId, lease.token).catch(() => undefined),
      ]);
    } catch (err) {
      await this.finish('refused');
      throw err;
    }
    const sse = startSse(reply, { [FRAME_SEQ_HEADER]: String(lastSeq) });
    const heartbeat = setInterval(() => void sse.comment('keepalive'), this.deps.heartbeatMs);
    const cancel = running.begin(sessionId);
    const onLost = (): void => cancel.stop(new LeaseLostError());
    lease.lost.addEventListener('abort', onLost, { once: true });
    if (lease.lost.aborted) onLost();
    services.frameLog.setRunning(sessionId, true, lease.token);
    const log = this.req.log.child({ session_id: sessionId });
    const write = async (data: string): Promise<void> => {
      if (!sse.closed) await sse.raw(`data: ${data}\n\n`);
    };
    const t = new TurnContext(fenced, sessionId, correlationId, lease.session.current_agent, lastSeq, cancel.signal, log, write, lease);
    // a turn that ends with its answer stores its event in its last commit
    t.endEvent = () => this.completedEvent(t, true);
    this.streaming = { t, prepared, sse, heartbeat, cancel, onLost };
  }

  /** Runs the started turn to its end, then `finish`. */
  async run(): Promise<TurnEnd> {
    const { t, prepared } = this.streaming!;
    let outcome: TurnEnd;
    try {
      if (this.req.newSession) {
        await t.emit({ type: 'session_info', session_id: this.sessionId, content: `Session ${this.sessionId} created`, is_final: false });
      }
      outcome = await prepared(t);
    } catch (err) {
      outcome = await this.failed(t, err);
    }
    return this.finish(outcome);
  }

  /**
   * Undoes what `start` did (heartbeat, cancel registration, running flag, stream, lease) and
   * records the turn's metrics and event; once, whoever calls it. Answers the final outcome
   * (`lease_lost` when the lease was found lost meanwhile).
   */
  finish(outcome: TurnEnd): Promise<TurnEnd> {
    this.finishing ??= this.undo(outcome);
    return this.finishing;
  }

  /** The turn's `agent.processing.completed` event. */
  private completedEvent(t: TurnContext, success: boolean): NewEvent<'agent.processing.completed'> {
    return {
      type: 'agent.processing.completed',
      sessionId: this.sessionId,
      correlationId: t.correlationId,
      data: { agent: t.agent, duration_ms: performance.now() - this.started, success },
    };
  }

  /** The outcome of a turn that threw: a cancel ends it with its final frame, a lost lease with nothing, anything else with an error frame. */
  private async failed(t: TurnContext, err: unknown): Promise<TurnEnd> {
    if (isCancelled(t.signal)) return cancelled(t, undefined, '').catch(() => 'cancelled' as const);
    if (err instanceof LeaseLostError || !this.lease!.held) return 'lease_lost';
    this.req.log.error({ err, session_id: this.sessionId }, 'turn failed');
    const e = err instanceof AppError ? err : runtimeErrors.RT_ERR_INTERNAL(runtimeErrors.RT_ERR_INTERNAL.def.message);
    await t.emit({ type: 'error', error: e.message, content: e.message, code: e.code, is_final: true }).catch(() => undefined);
    return 'error';
  }

  private async undo(outcome: TurnEnd): Promise<TurnEnd> {
    const { services } = this.deps;
    const lease = this.lease!;
    const s = this.streaming;
    let agent = lease.session.current_agent;
    let frameSeq = 0;
    try {
      if (s) {
        agent = s.t.agent;
        clearInterval(s.heartbeat);
        lease.lost.removeEventListener('abort', s.onLost);
        s.cancel.end();
        if (!lease.held) {
          // another lease took the session: this turn stops without a final frame (its followers
          // get the closing frame from the log)
          outcome = 'lease_lost';
          s.t.log.warn('session lease taken over during the turn (renewals failed for AGENT_RUNTIME__SESSION_LEASE_TTL); the turn stopped');
        }
        // (a hint only: a follower that finds it gone asks the lease; refused once another lease claimed the log)
        services.frameLog.setRunning(this.sessionId, false, lease.token);
        frameSeq = s.t.lastSeq;
        s.sse.end();
        // the final frame is in the log before the session is given up: a follower that finds the
        // lease free and the log unfinished may then take the turn for interrupted (a turn that
        // ended with its answer gave it up in that commit already, keeping the frame in the row:
        // TurnContext.end; the release below then does nothing)
        await services.frameLog.flush().catch(() => undefined);
        if (!s.t.endEventStored) services.events.record(this.completedEvent(s.t, !FAILED.includes(outcome)));
      }
    } finally {
      await lease.release(frameSeq).catch((err: unknown) => {
        this.req.log.warn({ err }, 'session lease not released; it expires on its own (the frame number is taken from the frame log then)');
      });
      const type = this.req.message.type;
      services.metrics.activeTurns.dec();
      services.metrics.turns.inc({ type, agent: agentLabel(agent), outcome });
      services.metrics.turnDuration.observe({ type, outcome }, (performance.now() - this.started) / 1000);
    }
    return outcome;
  }

  /**
   * The session's lease: the common case is one statement (an existing session of the caller's,
   * free), which also stores the turn's user message.
   */
  private async takeLease(): Promise<Lease> {
    const { store, leases, lockTimeoutMs } = this.deps;
    const { caller, newSession, message } = this.req;
    // a user message is stored by the statement that takes the lease (one commit for both)
    const take = { turn: true, userMessage: message.type === 'user_message' ? message.content : undefined };
    let sessionId = this.req.sessionId;
    let lease = !newSession && sessionId ? await leases.tryAcquire(sessionId, caller, take) : undefined;
    if (!lease) {
      if (newSession) {
        sessionId = randomUUID();
        await store.create(sessionId, caller ?? null);
      } else {
        if (!sessionId) throw runtimeErrors.RT_ERR_INVALID_MESSAGE('session_id is required (or new_session: true)');
        if (!(await store.getOrCreate(sessionId, caller))) throw runtimeErrors.RT_ERR_SESSION_NOT_FOUND(`Session ${sessionId} not found`);
      }
      try {
        lease = await leases.acquire(sessionId, lockTimeoutMs, take);
      } catch (err) {
        if (err instanceof SessionBusyError) throw runtimeErrors.RT_ERR_SESSION_BUSY(err.message);
        throw err;
      }
    }
    this.sessionId = sessionId!;
    return lease;
  }
}
