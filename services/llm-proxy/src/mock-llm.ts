/**
 * The deterministic mock LLM: the same conversation always gets the same answer, long enough
 * (well over 20 tokens) to exercise streaming, derived from the last user message.
 */
import type { ChatMessage } from '@codelab/protocol';

export function textOf(content: ChatMessage['content']): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p) => p.text ?? '').join('');
  return '';
}

export function lastUserText(messages: readonly ChatMessage[]): string {
  for (let i = messages.length - 1; i >= 0; i--) if (messages[i]!.role === 'user') return textOf(messages[i]!.content);
  return '';
}

/** Splits text into tokens: words with their trailing whitespace (concatenation gives the text back). */
export function tokenize(text: string): string[] {
  return text.match(/\s*\S+\s*/g) ?? [];
}

/** Rough prompt size in tokens (words), for usage accounting. */
export function countPromptTokens(messages: readonly ChatMessage[]): number {
  return messages.reduce((n, m) => n + tokenize(textOf(m.content)).length + 3, 0);
}

export function mockReply(messages: readonly ChatMessage[]): string {
  const asked = lastUserText(messages).replace(/\s+/g, ' ').trim();
  const topic = asked.length > 80 ? `${asked.slice(0, 77)}...` : asked || 'nothing in particular';
  const words = tokenize(asked).length;
  return (
    `Mock answer to "${topic}" (${words} word${words === 1 ? '' : 's'}). ` +
    'This reply comes from the CodeLab mock LLM: it is deterministic, so the same question always gets the same answer, ' +
    'and it is streamed token by token so that every hop of the platform can be tested end to end.'
  );
}

/** The role of the conversation's last message that is not a system prompt. */
export function lastRole(messages: readonly ChatMessage[]): ChatMessage['role'] | undefined {
  for (let i = messages.length - 1; i >= 0; i--) if (messages[i]!.role !== 'system') return messages[i]!.role;
  return undefined;
}

/** The answer once tool results came back: names the tools and what they returned. */
export function afterToolReply(messages: readonly ChatMessage[]): string {
  const results: ChatMessage[] = [];
  for (let i = messages.length - 1; i >= 0 && messages[i]!.role === 'tool'; i--) results.unshift(messages[i]!);
  const parts = results.map((m) => {
    const text = textOf(m.content).replace(/\s+/g, ' ').trim();
    return `${m.name ?? 'the tool'} returned "${text.length > 60 ? `${text.slice(0, 57)}...` : text}"`;
  });
  return `Mock answer after the tool results: ${parts.join('; ')}. The mock LLM read them and considers the task handled; ask again to continue.`;
}
