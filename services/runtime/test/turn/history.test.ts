import { describe, expect, it } from 'vitest';
import type { StoredMessage } from '../../src/store/sessions.ts';
import { buildPrompt, estimateTokens } from '../../src/turn/history.ts';

let seq = 0;
const msg = (role: StoredMessage['role'], content: string, extra: Partial<StoredMessage> = {}): StoredMessage => ({
  id: `m${++seq}`,
  seq,
  created_at: new Date(),
  role,
  content,
  ...extra,
});
const call = (id: string) => ({ id, type: 'function', function: { name: 'read_file', arguments: '{"path":"a"}' } });

describe('buildPrompt', () => {
  const long = 'x'.repeat(400); // ~100 tokens
  const history = [
    msg('user', `first ${long}`),
    msg('assistant', '', { tool_calls: [call('c1'), call('c2')] }),
    msg('tool', long, { tool_call_id: 'c1' }),
    msg('tool', long, { tool_call_id: 'c2' }),
    msg('assistant', `done ${long}`),
    msg('user', `second ${long}`),
  ];

  it('sends everything within the budget, after the system prompt', () => {
    const { messages, dropped } = buildPrompt('You are a test.', history, 100_000);
    expect(dropped).toBe(0);
    expect(messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'tool', 'tool', 'assistant', 'user']);
  });

  it('leaves out the oldest messages first, never a tool call without its results, and always keeps the newest', () => {
    const budget = estimateTokens({ role: 'system', content: 'You are a test.' }) + 2 * 110;
    const { messages, dropped } = buildPrompt('You are a test.', history, budget);
    expect(messages.map((m) => m.role)).toEqual(['system', 'assistant', 'user']);
    expect(dropped).toBe(4);
    const tiny = buildPrompt('You are a test.', history, 1);
    expect(tiny.messages.map((m) => m.role)).toEqual(['system', 'user']); // the newest message, even over budget
    // with room for the tool group, it comes whole
    const group = buildPrompt('You are a test.', history, 100 + 4 * 115);
    expect(group.messages.map((m) => m.role)).toEqual(['system', 'assistant', 'tool', 'tool', 'assistant', 'user']);
  });
});
