/** The one rule set for inbound frames: what passes, what each problem is, and how the runtime's assertion words it. */
import { describe, expect, it } from 'vitest';
import { assertTurnFrame, parseInboundFrame, validateInboundFrame, validateTurnFrame, type FrameProblem } from '../src/index.ts';

const problemOf = (text: string): FrameProblem => {
  const parsed = parseInboundFrame(text);
  if (parsed.ok) throw new Error(`expected a problem, got ${JSON.stringify(parsed.frame)}`);
  return parsed.problem;
};

describe('validate-frame', () => {
  describe('parseInboundFrame', () => {
    it.each([
      ['user_message', { type: 'user_message', content: 'hi', role: 'user' }],
      ['tool_result', { type: 'tool_result', call_id: 'c', result: { ok: true } }],
      ['tool_result with a null error', { type: 'tool_result', call_id: 'c', error: null }],
      ['switch_agent', { type: 'switch_agent', agent_type: 'coder' }],
      ['hitl_decision approve', { type: 'hitl_decision', call_id: 'c', decision: 'approve' }],
      ['hitl_decision edit', { type: 'hitl_decision', call_id: 'c', decision: 'edit', modified_arguments: { path: 'a.py' } }],
      ['hitl_decision edit with empty arguments', { type: 'hitl_decision', call_id: 'c', decision: 'edit', modified_arguments: {} }],
      ['hitl_decision reject', { type: 'hitl_decision', call_id: 'c', decision: 'reject', feedback: 'no' }],
      ['cancel', { type: 'cancel' }],
      ['ping', { type: 'ping', timestamp: 1 }],
      ['resume', { type: 'resume', last_seq: 0 }],
    ])('accepts %s as it is', (_name, frame) => {
      expect(parseInboundFrame(JSON.stringify(frame))).toEqual({ ok: true, frame });
    });

    it('defaults the role to user, lower-cases the decision and keeps unknown fields', () => {
      expect(parseInboundFrame('{"type":"user_message","content":"hi","x":1}')).toEqual({
        ok: true,
        frame: { type: 'user_message', content: 'hi', role: 'user', x: 1 },
      });
      expect(parseInboundFrame('{"type":"hitl_decision","call_id":"c","decision":"EDIT","modified_arguments":{"a":1}}')).toMatchObject({
        ok: true,
        frame: { decision: 'edit' },
      });
    });

    it.each<[string, string, Record<string, unknown>]>([
      ['not JSON', '{"type":', { kind: 'invalid_json', message: expect.stringMatching(/^Invalid JSON message: /) }],
      ['an array', '[1]', { kind: 'invalid_json', message: 'Invalid JSON message: expected a JSON object' }],
      ['no type', '{"content":"x"}', { kind: 'missing_type', message: 'Message type is required' }],
      [
        'an unknown type',
        '{"type":"telepathy"}',
        { kind: 'unknown_type', message: 'Unknown message type: telepathy', apiMessage: 'Unsupported message type: telepathy' },
      ],
      ['a null type', '{"type":null}', { kind: 'unknown_type', message: 'Unknown message type: null' }],
      [
        'an empty content',
        '{"type":"user_message","content":" "}',
        { kind: 'invalid_field', type: 'user_message', message: 'Invalid user_message message: field "content" must not be empty' },
      ],
      [
        'a bad role',
        '{"type":"user_message","content":"x","role":"wizard"}',
        { kind: 'invalid_field', message: expect.stringContaining('"role" must be one of') },
      ],
      [
        'a tool_result without call_id',
        '{"type":"tool_result"}',
        {
          kind: 'invalid_field',
          message: 'Invalid tool_result message: field "call_id" is required',
          apiMessage: 'call_id is required for tool_result message',
        },
      ],
      [
        'a switch_agent without agent_type',
        '{"type":"switch_agent"}',
        { kind: 'invalid_field', apiMessage: 'agent_type is required for switch_agent message' },
      ],
      [
        'a bad decision',
        '{"type":"hitl_decision","call_id":"c","decision":"maybe"}',
        { kind: 'invalid_field', apiMessage: 'Invalid HITL decision: maybe' },
      ],
      [
        'a missing decision',
        '{"type":"hitl_decision","call_id":"c"}',
        { kind: 'invalid_field', apiMessage: 'Invalid HITL decision: undefined' },
      ],
      [
        'an edit without modified_arguments',
        '{"type":"hitl_decision","call_id":"c","decision":"edit"}',
        {
          kind: 'invalid_field',
          type: 'hitl_decision',
          message: 'Invalid hitl_decision message: field "modified_arguments" is required for an edit and must be a JSON object',
        },
      ],
      [
        'an edit with null modified_arguments',
        '{"type":"hitl_decision","call_id":"c","decision":"edit","modified_arguments":null}',
        { kind: 'invalid_field' },
      ],
      [
        'an edit with string modified_arguments',
        '{"type":"hitl_decision","call_id":"c","decision":"edit","modified_arguments":"{}"}',
        { kind: 'invalid_field' },
      ],
      ['a bad control frame', '{"type":"resume","last_seq":-1}', { kind: 'invalid_field', type: 'resume' }],
    ])('names %s', (_name, text, expected) => {
      expect(problemOf(text)).toMatchObject(expected);
    });

    it('leaves the field checks to the type: an unknown type has no type in its problem', () => {
      expect(problemOf('{"type":"x"}').type).toBeUndefined();
    });
  });

  describe('validateTurnFrame', () => {
    it('takes the turn frames and refuses the control frames as unknown types', () => {
      expect(validateTurnFrame({ type: 'user_message', content: 'x' }).ok).toBe(true);
      for (const type of ['cancel', 'ping']) {
        expect(validateTurnFrame({ type })).toMatchObject({
          ok: false,
          problem: { kind: 'unknown_type', apiMessage: `Unsupported message type: ${type}` },
        });
      }
      expect(validateInboundFrame({ type: 'ping' }).ok).toBe(true);
    });
  });

  describe('assertTurnFrame', () => {
    const errors = {
      invalid: (message: string) => Object.assign(new Error(message), { code: 'INVALID' }),
      unsupported: (message: string) => Object.assign(new Error(message), { code: 'UNSUPPORTED' }),
    };
    const thrown = (message: unknown): unknown => {
      try {
        assertTurnFrame(message, errors);
        return undefined;
      } catch (err) {
        return err;
      }
    };

    it.each<[string, unknown, string, string | RegExp]>([
      ['an unknown type', { type: 'telepathy', content: 'x' }, 'UNSUPPORTED', 'Unsupported message type: telepathy'],
      ['a control frame', { type: 'resume', last_seq: 1 }, 'UNSUPPORTED', 'Unsupported message type: resume'],
      ['no type', {}, 'UNSUPPORTED', 'Unsupported message type: undefined'],
      ['a bad decision', { type: 'hitl_decision', call_id: 'c', decision: 'maybe' }, 'INVALID', 'Invalid HITL decision: maybe'],
      [
        'an edit without arguments',
        { type: 'hitl_decision', call_id: 'c', decision: 'edit' },
        'INVALID',
        /"modified_arguments" is required for an edit/,
      ],
      ['an empty user message', { type: 'user_message', content: '   ' }, 'INVALID', /"content" must not be empty/],
      ['a tool_result without call_id', { type: 'tool_result', result: {} }, 'INVALID', 'call_id is required for tool_result message'],
      ['not an object', 'hello', 'INVALID', 'Invalid JSON message: expected a JSON object'],
    ])('throws the caller’s error for %s, in the runtime API’s wording', (_name, message, code, text) => {
      const err = thrown(message) as Error & { code: string };
      expect(err.code).toBe(code);
      if (typeof text === 'string') expect(err.message).toBe(text);
      else expect(err.message).toMatch(text);
    });

    it('passes a well-formed turn frame', () => {
      expect(thrown({ type: 'hitl_decision', call_id: 'c', decision: 'EDIT', modified_arguments: { path: 'b.py' } })).toBeUndefined();
      expect(thrown({ type: 'switch_agent', agent_type: 'architect' })).toBeUndefined();
    });
  });
});
