/** What the chat-completions route needs from a provider: OpenAI chunks, one request at a time. */
import type { ServerResponse } from 'node:http';
import type { ChatCompletionChunk, ChatCompletionRequest, Usage } from '@codelab/protocol';
import type { ModelRoute } from '../model-map.ts';

type ProviderName = 'mock' | 'openai';

export type ProviderEvent =
  /** `raw`, when set, is the chunk's JSON exactly as received: forwarded without re-encoding. */
  | { type: 'chunk'; chunk: ChatCompletionChunk; raw?: string }
  /**
   * Whole SSE events to forward to a streaming client as they are (an upstream's text, with the
   * public model name): `events` of them, and the usage and finish reason they carried.
   */
  | { type: 'sse'; text: string; events: number; usage?: Usage | undefined; finish?: string | undefined }
  /**
   * Fault injection (the mock's): the provider ends the exchange itself. The route counts it under
   * `outcome`, sends nothing more and hands over the response, which `cut` drops without a word.
   */
  | { type: 'cut'; outcome: string; cut(response: ServerResponse): Promise<void> };

export interface ProviderCall {
  /**
   * Read while `stream` is called, not later: the stream keeps none of it (it carries the whole
   * prompt, and what a stream keeps for its whole answer outlives the young generation).
   */
  request: ChatCompletionRequest;
  route: ModelRoute;
  headers: Record<string, string | string[] | undefined>;
  /** Aborted when the client goes away. */
  signal: AbortSignal;
}

export interface ProviderStream {
  /**
   * Chunks in order. Errors before the first chunk are OpenAIErrors (the route answers with their
   * status); later ones end the stream with an error event.
   */
  events: AsyncGenerator<ProviderEvent, void, undefined>;
  /** Milliseconds from the start of the successful upstream attempt to its first output chunk. */
  upstreamTtftMs(): number | undefined;
  /** The upstream model that answered. */
  upstreamModel(): string | undefined;
}

export interface Provider {
  readonly name: ProviderName;
  /** Value of `gen_ai.provider.name` on spans. */
  readonly semconvName: string;
  stream(call: ProviderCall): ProviderStream;
  close(): Promise<void>;
}
