/**
 * The answer one chat completion gave so far, as its chunks tell it: text, tool calls (assembled
 * from their streamed pieces), finish reason, usage, and the id and time of the first chunk. The
 * JSON reply is built from it; telemetry reads it for the span and the token metrics.
 */
import { addToolCallDeltas, type ChatCompletion, type ChatCompletionChunk, type ToolCall, type Usage } from '@codelab/protocol';

export class Answer {
  content = '';
  /** By the pieces' index: may have holes until complete. */
  readonly tools: ToolCall[] = [];
  finish: string | null = null;
  usage: Usage | undefined;
  id: string | undefined;
  created: number | undefined;

  add(c: ChatCompletionChunk): void {
    this.id ??= c.id;
    this.created ??= c.created;
    if (c.usage) this.usage = c.usage;
    const choice = c.choices?.[0];
    if (!choice) return;
    if (choice.delta?.content) this.content += choice.delta.content;
    addToolCallDeltas(this.tools, choice.delta?.tool_calls);
    if (choice.finish_reason) this.finish = choice.finish_reason;
  }

  /** What an upstream's forwarded SSE text carried (its text itself is not decoded). */
  addForwarded(usage: Usage | undefined, finish: string | undefined): void {
    if (usage) this.usage = usage;
    if (finish) this.finish = finish;
  }

  /** The non-streaming answer, `chat.completion`, under the public model name. */
  completion(model: string): ChatCompletion {
    const toolCalls = this.tools.filter(Boolean);
    return {
      id: this.id ?? `chatcmpl-${crypto.randomUUID()}`,
      object: 'chat.completion',
      created: this.created ?? Math.floor(Date.now() / 1000),
      model,
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: this.content || (toolCalls.length ? null : ''),
            ...(toolCalls.length ? { tool_calls: toolCalls } : {}),
          },
          finish_reason: this.finish ?? 'stop',
        },
      ],
      usage: this.usage ?? { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
    };
  }
}
