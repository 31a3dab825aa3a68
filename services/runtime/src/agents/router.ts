/**
 * The orchestrator's routing: an LLM classification answered in JSON
 * (`{"agent","confidence","reasoning"}`), and when that fails (HTTP error, not JSON, an agent that
 * is not registered) keyword rules that match whole words, never substrings ("prefix" is not
 * "fix", "specific" is not "spec"). Single-agent mode routes to universal without asking.
 */
import type { ChatMessage } from '@codelab/protocol';
import type { AgentType } from './definitions.ts';

export interface Classification {
  agent: AgentType;
  confidence: 'high' | 'medium' | 'low';
  reasoning: string;
  method: 'llm' | 'keywords' | 'single_agent';
  error?: string;
}

const CLASSIFIER_SYSTEM_PROMPT = 'You are a task classifier. Respond only with JSON.';

export function classificationMessages(userMessage: string): ChatMessage[] {
  return [
    { role: 'system', content: CLASSIFIER_SYSTEM_PROMPT },
    {
      role: 'user',
      content: `Classify the user's request to the agent best suited for it:
- coder: writing, modifying, refactoring or fixing code
- architect: planning, designing, writing specifications and documentation
- debug: investigating errors, crashes and unexpected behaviour
- ask: answering questions and explaining concepts

Answer with JSON only: {"agent": "coder|architect|debug|ask", "confidence": "high|medium|low", "reasoning": "..."}

User message: ${userMessage.replace(/\s+/g, ' ').trim()}`,
    },
  ];
}

const KEYWORDS: [AgentType, string[]][] = [
  ['coder', ['create', 'write', 'implement', 'fix', 'code', 'refactor', 'modify']],
  ['architect', ['design', 'architecture', 'plan', 'spec', 'blueprint']],
  ['debug', ['debug', 'error', 'bug', 'problem', 'why', 'investigate', 'crash']],
  ['ask', ['explain', 'what is', 'how does', 'help', 'understand']],
];
const KEYWORD_PATTERNS: [AgentType, string, RegExp][] = KEYWORDS.flatMap(([agent, words]) =>
  words.map(
    (w) => [agent, w, new RegExp(`(?<![\\p{L}\\p{N}_])${w.replace(/ /g, '\\s+')}(?![\\p{L}\\p{N}_])`, 'iu')] as [AgentType, string, RegExp],
  ),
);

/** Upstream's keyword rules, on whole words; no match gives the coder. */
export function classifyByKeywords(message: string, error?: string): Classification {
  for (const [agent, word, re] of KEYWORD_PATTERNS) {
    if (re.test(message))
      return {
        agent,
        confidence: 'low',
        reasoning: `Fallback classification: the message mentions "${word}"`,
        method: 'keywords',
        ...(error ? { error } : {}),
      };
  }
  return {
    agent: 'coder',
    confidence: 'low',
    reasoning: 'Fallback classification: no keyword matched',
    method: 'keywords',
    ...(error ? { error } : {}),
  };
}

/** The JSON object of a classifier answer: plain, or inside a ```json fence. */
export function parseClassification(text: string, allowed: readonly AgentType[]): Omit<Classification, 'method'> {
  const candidates = [
    text,
    /```json\s*([\s\S]*?)```/i.exec(text)?.[1],
    /```\s*([\s\S]*?)```/.exec(text)?.[1],
    /\{[\s\S]*\}/.exec(text)?.[0],
  ];
  for (const c of candidates) {
    if (!c) continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(c.trim());
    } catch {
      continue;
    }
    const o = parsed as { agent?: unknown; confidence?: unknown; reasoning?: unknown };
    const agent = typeof o.agent === 'string' ? o.agent.toLowerCase().trim() : '';
    if (!(allowed as readonly string[]).includes(agent))
      throw new Error(`the classifier chose "${agent}", which is not an available agent`);
    const confidence = o.confidence === 'high' || o.confidence === 'medium' || o.confidence === 'low' ? o.confidence : 'medium';
    return {
      agent: agent as AgentType,
      confidence,
      reasoning: typeof o.reasoning === 'string' && o.reasoning ? o.reasoning : `Task classified as ${agent}`,
    };
  }
  throw new Error('the classifier answer is not JSON');
}
