/** The OpenAI chat-completions wire shapes the llm-proxy speaks (the subset the platform uses). */

export interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

/** A streamed piece of a tool call: `index` ties the pieces together; id and name come first. */
export interface ToolCallDelta {
  index: number;
  id?: string;
  type?: 'function';
  function?: { name?: string; arguments?: string };
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool' | 'developer';
  content: string | null | { type: string; text?: string }[];
  name?: string;
  tool_call_id?: string;
  tool_calls?: unknown[];
}

export interface ChatCompletionRequest {
  model: string;
  messages: ChatMessage[];
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  temperature?: number;
  top_p?: number;
  max_tokens?: number;
  max_completion_tokens?: number;
  stop?: string | string[];
  tools?: unknown[];
  tool_choice?: unknown;
  [extra: string]: unknown;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter' | 'function_call';

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: {
    index: number;
    delta: { role?: 'assistant'; content?: string | null; tool_calls?: ToolCallDelta[] };
    finish_reason: string | null;
  }[];
  usage?: Usage | null;
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: { index: number; message: { role: 'assistant'; content: string | null; tool_calls?: ToolCall[] }; finish_reason: string }[];
  usage: Usage;
}

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/**
 * CodeLab's extension of a streaming chat completion (`stream: true`), asked by the runtime: after
 * the first output, which leaves at once, the llm-proxy writes what came meanwhile at most every
 * this many milliseconds (0-1000; absent or 0: as it comes), several chunks in one write. The
 * runtime gathers tokens into frames at that interval anyway (AGENT_RUNTIME__TOKEN_FRAME_INTERVAL),
 * so nothing reaches the IDE later, and every token no longer costs a write, a read and a wake-up.
 */
export const WRITE_INTERVAL_HEADER = 'x-codelab-write-interval-ms';
export const MAX_WRITE_INTERVAL_MS = 1000;
