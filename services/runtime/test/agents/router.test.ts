import { describe, expect, it } from 'vitest';
import { refusal, AGENTS } from '../../src/agents/definitions.ts';
import { classifyByKeywords, parseClassification } from '../../src/agents/router.ts';
import { TOOL_NAMES, toolSpecs } from '../../src/agents/tool-specs.ts';

describe('routing', () => {
  describe('classifyByKeywords', () => {
    it.each([
      ['please fix the login', 'coder'],
      ['what is the prefix of this id?', 'ask'], // "prefix" is not "fix"; "what is" asks
      ['a specific question about the API', 'coder'], // "specific" is not "spec": no keyword, default
      ['write the spec for billing', 'coder'], // upstream's order: coder words first
      ['investigate the crash', 'debug'],
      ['Design the new architecture', 'architect'],
      ['How does the cache work?', 'ask'],
    ])('%s → %s (whole words, never substrings)', (message, agent) => {
      expect(classifyByKeywords(message).agent).toBe(agent);
    });

    it('says it is a fallback and keeps the error', () => {
      expect(classifyByKeywords('hello', 'LLM down')).toMatchObject({
        agent: 'coder',
        confidence: 'low',
        method: 'keywords',
        error: 'LLM down',
      });
    });
  });

  describe('parseClassification', () => {
    const allowed = ['coder', 'architect', 'debug', 'ask'] as const;
    it('reads plain JSON, fenced JSON and JSON inside prose', () => {
      expect(parseClassification('{"agent":"Debug","confidence":"high","reasoning":"stack trace"}', allowed)).toEqual({
        agent: 'debug',
        confidence: 'high',
        reasoning: 'stack trace',
      });
      expect(parseClassification('```json\n{"agent":"ask"}\n```', allowed)).toMatchObject({
        agent: 'ask',
        confidence: 'medium',
        reasoning: 'Task classified as ask',
      });
      expect(parseClassification('Sure! {"agent": "architect", "confidence": "low"} hope that helps', allowed)).toMatchObject({
        agent: 'architect',
        confidence: 'low',
      });
    });
    it('refuses an agent that is not available (upstream crashed on "universal" in multi-agent mode) and non-JSON', () => {
      expect(() => parseClassification('{"agent":"universal"}', allowed)).toThrow(/not an available agent/);
      expect(() => parseClassification('the coder, I think', allowed)).toThrow(/not JSON/);
    });
  });
});

describe('agents', () => {
  it('has a spec for every tool an agent may use, including attempt_completion and ask_followup_question', () => {
    for (const agent of Object.values(AGENTS)) for (const tool of agent.allowedTools) expect(TOOL_NAMES).toContain(tool);
    expect(toolSpecs(['attempt_completion', 'ask_followup_question']).map((s) => s.function.name)).toEqual([
      'attempt_completion',
      'ask_followup_question',
    ]);
  });

  it('applies upstream permissions and file restrictions', () => {
    expect(refusal(AGENTS.ask, 'write_file', { path: 'a.md' })).toMatch(/^Ask agent cannot modify files/);
    expect(refusal(AGENTS.ask, 'execute_command', { command: 'ls' })).toMatch(/^Ask agent cannot execute commands/);
    expect(refusal(AGENTS.debug, 'write_file', { path: 'a.ts' })).toMatch(/^Debug agent cannot modify files/);
    expect(refusal(AGENTS.debug, 'execute_command', { command: 'npm test' })).toBeUndefined();
    expect(refusal(AGENTS.architect, 'write_file', { path: 'docs/plan.md' })).toBeUndefined();
    expect(refusal(AGENTS.architect, 'write_file', { path: 'src/plan.ts' })).toMatch(/can only create\/edit markdown/);
    expect(refusal(AGENTS.architect, 'execute_command', {})).toBe("Tool 'execute_command' is not allowed for Architect agent");
    expect(refusal(AGENTS.coder, 'switch_mode', { mode: 'ask' })).toBe("Tool 'switch_mode' is not allowed for Coder agent");
    expect(refusal(AGENTS.coder, 'delete_everything', {})).toMatch(/not allowed/);
  });
});
