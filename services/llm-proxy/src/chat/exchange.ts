/**
 * One chat completion from its first output on, as the reply stages (json-reply.ts, sse-stream.ts)
 * share it, and what either does with a provider's `cut` event.
 */
import type { FastifyBaseLogger, FastifyReply } from 'fastify';
import type { ProviderEvent } from '../providers/provider.ts';
import type { Answer } from './answer.ts';
import type { ChatTelemetry } from './telemetry.ts';

export type CutEvent = Extract<ProviderEvent, { type: 'cut' }>;

export interface ChatExchange {
  /** The model the client asked for (the completion's `model`). */
  model: string;
  /** The client asked for the usage chunk (`stream_options.include_usage`). */
  includeUsage: boolean;
  reply: FastifyReply;
  log: FastifyBaseLogger;
  providerName: string;
  /** The provider's events up to its first output (first-output.ts), in order. */
  first: readonly ProviderEvent[];
  /** The provider's events after those. */
  events: AsyncGenerator<ProviderEvent, void, undefined>;
  /** Aborted when the client goes away. */
  clientGone: AbortSignal;
  answer: Answer;
  telemetry: ChatTelemetry;
  /** After the first output, write at most every this many ms (0: as it comes; WRITE_INTERVAL_HEADER). */
  writeIntervalMs: number;
}

/** A provider's `cut` (the mock's injected disconnect): counted under its outcome, then the provider drops the connection. */
export async function cutConnection(x: ChatExchange, ev: CutEvent): Promise<void> {
  x.telemetry.finish(ev.outcome);
  x.reply.hijack();
  await ev.cut(x.reply.raw);
}
