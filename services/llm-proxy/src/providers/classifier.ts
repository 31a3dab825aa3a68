/**
 * The mock's answer to the runtime's routing classifier (upstream protocol §2.1): a system prompt
 * asking for JSON `{"agent","confidence","reasoning"}`. The agent is chosen by whole-word keywords
 * of the user's message (upstream matched substrings, so "prefix" meant "fix").
 */
import type { ChatMessage } from '@codelab/protocol';
import { textOf } from '../mock-llm.ts';
import { stripDirectives } from './mock-directives.ts';

const KEYWORDS: [agent: string, words: string[]][] = [
  ['coder', ['create', 'write', 'implement', 'fix', 'code', 'refactor', 'modify']],
  ['architect', ['design', 'architecture', 'plan', 'spec', 'blueprint']],
  ['debug', ['debug', 'error', 'bug', 'problem', 'why', 'investigate', 'crash']],
  ['ask', ['explain', 'what is', 'how does', 'help', 'understand']],
];

export function isClassifierRequest(messages: readonly ChatMessage[]): boolean {
  const system = messages
    .filter((m) => m.role === 'system')
    .map((m) => textOf(m.content))
    .join('\n');
  return /classifier/i.test(system) && /json/i.test(system);
}

/** The user's message inside the classification prompt (the line after `message:`), or the whole text. */
function userMessageOf(prompt: string): string {
  const lines = [...prompt.matchAll(/(?:user message|user request|message|request|task)\s*:\s*(.+)/gi)];
  const last = lines.at(-1)?.[1]?.trim();
  return (last ?? prompt).replace(/^["'`]+|["'`]+$/g, '');
}

export function classify(messages: readonly ChatMessage[]): { agent: string; confidence: 'high' | 'low'; reasoning: string } {
  const user = [...messages].reverse().find((m) => m.role === 'user');
  const text = stripDirectives(userMessageOf(user ? textOf(user.content) : '')).toLowerCase();
  for (const [agent, words] of KEYWORDS) {
    for (const w of words) {
      if (new RegExp(`\\b${w.replace(/ /g, '\\s+')}\\b`).test(text))
        return { agent, confidence: 'high', reasoning: `The message mentions "${w}".` };
    }
  }
  return { agent: 'coder', confidence: 'low', reasoning: 'No keyword matched; defaulting to the coder.' };
}
