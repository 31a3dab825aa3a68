/**
 * What one turn works with: the services (stores, LLM, policy, event sink), the session, the
 * cancel signal, and `emit`, which numbers each frame (`seq`), keeps it in the frame log for
 * clients that reconnect, and streams it to the caller if the caller is still there.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { Database } from '@codelab/service-kit';
import type { StreamChunk } from '@codelab/protocol';
import type { AgentDefinition, AgentType } from '../agents/definitions.ts';
import type { ApprovalPolicy } from '../hitl/policy.ts';
import type { LlmClient } from '../llm-client.ts';
import type { RuntimeMetrics } from '../metrics.ts';
import type { AgentContextStore } from '../store/agent-context.ts';
import type { EventData, EventStore, EventType } from '../store/events.ts';
import type { SessionStore } from '../store/sessions.ts';
import type { ToolCallStore } from '../store/tool-calls.ts';
import type { FrameLog } from './frame-log.ts';

/** Where turns report what happened: durable events and per-session LLM usage (never fails a turn). */
export type EventSink = Pick<EventStore, 'record' | 'recordLlmRequest'>;

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
}

/** A sink for frames that writes to the caller's SSE response (never throws when the caller left). */
export type FrameWriter = (data: string) => Promise<void>;

export class TurnContext {
  private seq: number;
  /** The agent that answered last (the turns metric's label). */
  agent: string;
  /** LLM calls made so far in this turn. */
  steps = 0;

  constructor(
    readonly services: ConversationServices,
    readonly sessionId: string,
    readonly correlationId: string,
    currentAgent: string,
    lastSeq: number,
    readonly signal: AbortSignal,
    readonly log: FastifyBaseLogger,
    private readonly write: FrameWriter,
  ) {
    this.seq = lastSeq;
    this.agent = currentAgent;
  }

  get lastSeq(): number {
    return this.seq;
  }

  async emit(chunk: StreamChunk): Promise<void> {
    const seq = ++this.seq;
    // chunks are built here without null fields (absent, not null, as upstream clients expect)
    const data = JSON.stringify({ ...chunk, seq });
    this.services.frameLog.append(this.sessionId, { seq, data, final: chunk.is_final === true });
    await this.write(data);
  }

  event<T extends EventType>(type: T, data: EventData<T>): void {
    void this.services.events.record({ type, sessionId: this.sessionId, correlationId: this.correlationId, data });
  }
}
