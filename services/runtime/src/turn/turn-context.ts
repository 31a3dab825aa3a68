/**
 * What one turn works with: the services (stores, LLM, policy, event sink), the session, the
 * cancel signal, and `emit`, which numbers each frame (`seq`), keeps it in the frame log for
 * clients that reconnect, and streams it to the caller if the caller is still there. A turn whose
 * session lease was taken over sends nothing more (the taker closed it for its followers): `emit`
 * throws LeaseLostError, and the log refuses its frames even before it knows (the frame's fence).
 */
import type { FastifyBaseLogger } from 'fastify';
import type { Database } from '@codelab/service-kit';
import type { StreamChunk } from '@codelab/protocol';
import type { AgentDefinition, AgentType } from '../agents/definitions.ts';
import type { ApprovalPolicy } from '../hitl/policy.ts';
import type { LlmClient } from '../llm-client.ts';
import type { RuntimeMetrics } from '../metrics.ts';
import type { AgentContextStore } from '../store/agent-context.ts';
import type { EventData, EventType } from '../store/event-catalog.ts';
import type { EventWriter, NewEvent } from '../store/event-writer.ts';
import type { SessionStore, StoredMessage, TurnEnd, WriteFence } from '../store/sessions.ts';
import type { ToolCallStore } from '../store/tool-calls.ts';
import type { AppendFence, FrameLog } from './frame-log.ts';
import { LeaseLostError, type Lease } from './session-lease.ts';
import type { FrameClock } from './token-frames.ts';

/** Where turns report what happened: durable events and per-session LLM usage (never fails a turn); a turn's last commit takes the queued rows along. */
export type EventSink = Pick<EventWriter, 'record' | 'recordLlmRequest' | 'take'>;

export interface ConversationServices {
  db: Database;
  sessions: SessionStore;
  toolCalls: ToolCallStore;
  agentContext: AgentContextStore;
  events: EventSink;
  llm: LlmClient;
  metrics: RuntimeMetrics;
  policy: ApprovalPolicy;
  frameLog: FrameLog;
  /** The agents of the configured mode, by type. */
  agents: ReadonlyMap<AgentType, AgentDefinition>;
  multiAgentMode: boolean;
  approvalTimeoutMs: number;
  historyTokenBudget: number;
  maxStepsPerTurn: number;
  /** The tick the answers' gathered tokens leave at (token-frames.ts): its interval is the longest a gathered token waits for its frame; 0: a frame per token. */
  frameClock: FrameClock;
  /** The same stores on another database (a turn's, whose writes its lease fences: fenced-db.ts), with the fence its one-statement writes carry. */
  storesOn: (db: Database, fence: WriteFence) => TurnStores;
}

/** The stores a turn writes through. */
export type TurnStores = Pick<ConversationServices, 'sessions' | 'toolCalls' | 'agentContext'>;

/** A sink for frames that writes to the caller's SSE response (never throws when the caller left). */
export type FrameWriter = (data: string) => Promise<void>;

/** What the turn holds its session by: whether it still does, its fencing token, and frame numbers reserved in the row. */
export type TurnLease = Pick<Lease, 'held' | 'token' | 'lose' | 'ensureSeq' | 'releaseSeq' | 'released' | 'session'>;

export class TurnContext {
  private seq: number;
  /** The agent that answered last (the turns metric's label). */
  agent: string;
  /** LLM calls made so far in this turn. */
  steps = 0;
  readonly services: ConversationServices;
  readonly sessionId: string;
  readonly correlationId: string;
  readonly signal: AbortSignal;
  readonly log: FastifyBaseLogger;
  private readonly write: FrameWriter;
  private readonly lease: TurnLease | undefined;
  private readonly fence: AppendFence | undefined;
  /** The turn's own event, stored by `end` in the turn's last commit (TurnRunner's `agent.processing.completed`). */
  endEvent: (() => NewEvent) | undefined;
  /** `end` stored `endEvent`. */
  endEventStored = false;
  /** The history the lease's statement read (session-lease.ts), for the turn's first LLM call. */
  private history: StoredMessage[] | undefined;

  constructor(
    services: ConversationServices,
    sessionId: string,
    correlationId: string,
    currentAgent: string,
    lastSeq: number,
    signal: AbortSignal,
    log: FastifyBaseLogger,
    write: FrameWriter,
    lease?: TurnLease,
  ) {
    this.services = services;
    this.sessionId = sessionId;
    this.correlationId = correlationId;
    this.signal = signal;
    this.log = log;
    this.write = write;
    this.lease = lease;
    this.fence = lease && { token: lease.token, onRefused: () => lease.lose() };
    this.seq = lastSeq;
    this.agent = currentAgent;
    // the turn holds the history until its first LLM call only: the lease lives as long as the
    // turn, and a history kept by it would outlive the garbage collector's young generation
    this.history = lease?.session.history;
    if (lease) delete lease.session.history;
  }

  /** The history read with the lease, once (the turn's first LLM call); later calls read it again. */
  takeHistory(): StoredMessage[] | undefined {
    const history = this.history;
    this.history = undefined;
    return history;
  }

  get lastSeq(): number {
    return this.seq;
  }

  async emit(chunk: StreamChunk): Promise<void> {
    this.throwIfLost();
    const seq = ++this.seq;
    const reserving = this.lease?.ensureSeq(seq);
    if (reserving) await reserving;
    // chunks are built here without null fields (absent, not null, as upstream clients expect)
    const data = JSON.stringify({ ...chunk, seq });
    // into the log first: a caller never sees a frame the log may not get (but for a turn whose
    // lease was just taken over: Redis says it refused the frame after the hand-off, then the turn stops)
    const logged = this.services.frameLog.append(this.sessionId, { seq, data, final: chunk.is_final === true }, this.fence);
    if (logged) await logged;
    this.throwIfLost();
    await this.write(data);
  }

  /**
   * Ends the turn with its final frame `chunk`, stored in the same commit as what `store` writes
   * (the answer: store/sessions.ts `append` with the `end` it gets), which also frees the session and
   * carries the bookkeeping rows queued so far: one commit where there were three. The frame goes to
   * the log and the caller after the commit; should the log miss it (this runtime dies, the next
   * turn fences the log first), the row keeps it for whoever finds the log one frame behind
   * (interrupted-turns.ts), and the log keeps it once. Without a lease `store` gets no end.
   */
  async end(chunk: StreamChunk, store: (end: TurnEnd | undefined) => Promise<unknown>): Promise<void> {
    if (!this.lease) {
      await store(undefined);
      return this.emit(chunk);
    }
    this.throwIfLost();
    const seq = this.seq + 1;
    const data = JSON.stringify({ ...chunk, seq });
    await store({ frameSeq: this.lease.releaseSeq(seq), finalFrame: data, rows: this.services.events.take(this.endEvent?.()) });
    this.endEventStored = this.endEvent !== undefined;
    this.seq = seq;
    this.lease.released();
    await this.services.frameLog.appendOnce(this.sessionId, { seq, data, final: true }).catch((err: unknown) => {
      this.services.metrics.frameLogErrors.inc();
      this.log.warn(
        { err: { message: (err as Error).message }, seq },
        'final frame not logged; the next turn or a follower logs it from the session row',
      );
    });
    await this.write(data);
  }

  /** LeaseLostError once the turn's lease is known to be lost: the turn stops where it is. */
  throwIfLost(): void {
    if (this.lease && !this.lease.held) throw new LeaseLostError();
  }

  event<T extends EventType>(type: T, data: EventData<T>): void {
    void this.services.events.record({ type, sessionId: this.sessionId, correlationId: this.correlationId, data });
  }
}
