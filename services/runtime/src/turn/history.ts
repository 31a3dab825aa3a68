/**
 * What the LLM sees: the agent's system prompt, then as much recent history as the token budget
 * allows. Messages are kept in whole groups — an assistant message with tool calls together with
 * the tool results that answer it — so a trimmed history is still valid for the provider; the
 * newest group is always kept. Tokens are estimated (4 characters a token, plus framing).
 */
import type { ChatMessage } from '@codelab/protocol';
import { toChatMessage, type StoredMessage } from '../store/sessions.ts';

export function estimateTokens(m: ChatMessage): number {
  const text = typeof m.content === 'string' ? m.content : JSON.stringify(m.content ?? '');
  return Math.ceil((text.length + (m.tool_calls ? JSON.stringify(m.tool_calls).length : 0)) / 4) + 4;
}

/** Groups: a tool result joins the group of the assistant message before it. */
function groups(messages: readonly ChatMessage[]): ChatMessage[][] {
  const out: ChatMessage[][] = [];
  for (const m of messages) {
    if (m.role === 'tool' && out.length) out.at(-1)!.push(m);
    else out.push([m]);
  }
  return out;
}

export function buildPrompt(
  systemPrompt: string,
  history: readonly StoredMessage[],
  budget: number,
): { messages: ChatMessage[]; dropped: number } {
  const system: ChatMessage = { role: 'system', content: systemPrompt };
  const all = groups(history.filter((m) => m.role !== 'system').map(toChatMessage));
  let used = estimateTokens(system);
  const kept: ChatMessage[][] = [];
  for (let i = all.length - 1; i >= 0; i--) {
    const g = all[i]!;
    const cost = g.reduce((n, m) => n + estimateTokens(m), 0);
    if (kept.length > 0 && used + cost > budget) break;
    used += cost;
    kept.unshift(g);
  }
  // a history must not start with tool results whose call was left out
  while (kept.length && kept[0]![0]!.role === 'tool') kept.shift();
  const messages = [system, ...kept.flat()];
  return { messages, dropped: history.length - (messages.length - 1) };
}
