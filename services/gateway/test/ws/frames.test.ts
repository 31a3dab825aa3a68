/** Parsing of inbound IDE frames: upstream's frames as written are accepted; problems are named. */
import { describe, expect, it } from 'vitest';
import { isControlFrame, parseFrame } from '../../src/ws/frames.ts';

describe('parseFrame', () => {
  describe('accepts the upstream frames as written', () => {
    it.each([
      ['user_message', '{"type":"user_message","content":"Что такое DI?","role":"user"}'],
      ['user_message with agent_type', '{"type":"user_message","content":"x","role":"user","agent_type":"coder"}'],
      ['tool_result with result', '{"type":"tool_result","call_id":"call_1","result":{"content":"..."}}'],
      ['tool_result with error', '{"type":"tool_result","call_id":"call_2","error":"Операция отклонена: write_file"}'],
      ['switch_agent', '{"type":"switch_agent","agent_type":"architect","content":"Design auth","reason":"User requested"}'],
      ['hitl_decision approve', '{"type":"hitl_decision","call_id":"call_2","decision":"approve"}'],
      ['hitl_decision edit', '{"type":"hitl_decision","call_id":"call_2","decision":"edit","modified_arguments":{"path":"v2.py"}}'],
      ['hitl_decision reject', '{"type":"hitl_decision","call_id":"call_2","decision":"reject","feedback":"Too risky"}'],
    ])('%s', (_name, text) => {
      const parsed = parseFrame(text);
      expect(parsed.ok).toBe(true);
      if (parsed.ok) expect(parsed.frame).toMatchObject(JSON.parse(text) as object);
    });
  });

  describe('accepts the control frames', () => {
    it.each([
      ['cancel', '{"type":"cancel"}'],
      ['ping', '{"type":"ping"}'],
      ['ping with a timestamp', '{"type":"ping","timestamp":1717171717}'],
      ['ping with any timestamp', '{"type":"ping","timestamp":{"sent":"2024-01-01T00:00:00Z"}}'],
      ['resume', '{"type":"resume","last_seq":0}'],
      [
        'resume with a traceparent',
        '{"type":"resume","last_seq":42,"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}',
      ],
    ])('%s', (_name, text) => {
      const parsed = parseFrame(text);
      expect(parsed.ok).toBe(true);
      if (parsed.ok) {
        expect(parsed.frame).toEqual(JSON.parse(text));
        expect(isControlFrame(parsed.frame)).toBe(true);
      }
    });

    it('tells turn frames from control frames', () => {
      const parsed = parseFrame('{"type":"user_message","content":"hi"}');
      expect(parsed.ok && isControlFrame(parsed.frame)).toBe(false);
    });
  });

  it('defaults a missing role to user and keeps unknown extra fields', () => {
    const parsed = parseFrame('{"type":"user_message","content":"hi","session_id":"ignored","extra":1}');
    expect(parsed).toEqual({ ok: true, frame: { type: 'user_message', content: 'hi', role: 'user', session_id: 'ignored', extra: 1 } });
  });

  it('normalizes the case of a HITL decision (upstream README sends APPROVE)', () => {
    expect(parseFrame('{"type":"hitl_decision","call_id":"c","decision":"APPROVE"}')).toMatchObject({
      ok: true,
      frame: { decision: 'approve' },
    });
  });

  it.each([
    ['not JSON', 'not a json', 'GW_ERR_WS_INVALID_JSON', /^Invalid JSON message: /],
    ['a JSON string', '"hello"', 'GW_ERR_WS_INVALID_JSON', /expected a JSON object/],
    ['null', 'null', 'GW_ERR_WS_INVALID_JSON', /expected a JSON object/],
    ['no type', '{"content":"x"}', 'GW_ERR_WS_INVALID_FRAME', /^Message type is required$/],
    ['a numeric type', '{"type":7}', 'GW_ERR_WS_UNKNOWN_TYPE', /^Unknown message type: 7$/],
    ['an unknown type', '{"type":"ping_me"}', 'GW_ERR_WS_UNKNOWN_TYPE', /^Unknown message type: ping_me$/],
    [
      'content not a string',
      '{"type":"user_message","content":42}',
      'GW_ERR_WS_INVALID_FRAME',
      /"content" is required and must be a string/,
    ],
    [
      'a bad agent_type',
      '{"type":"user_message","content":"x","agent_type":5}',
      'GW_ERR_WS_INVALID_FRAME',
      /"agent_type" must be a string/,
    ],
    ['switch_agent without agent_type', '{"type":"switch_agent","content":"x"}', 'GW_ERR_WS_INVALID_FRAME', /"agent_type" is required/],
    [
      'hitl_decision with a bad decision',
      '{"type":"hitl_decision","call_id":"c","decision":"maybe"}',
      'GW_ERR_WS_INVALID_FRAME',
      /approve, edit or reject/,
    ],
    ['hitl_decision without call_id', '{"type":"hitl_decision","decision":"approve"}', 'GW_ERR_WS_INVALID_FRAME', /"call_id" is required/],
    [
      'an edit without modified_arguments',
      '{"type":"hitl_decision","call_id":"c","decision":"edit"}',
      'GW_ERR_WS_INVALID_FRAME',
      /"modified_arguments" is required for an edit/,
    ],
    [
      'an EDIT with array arguments',
      '{"type":"hitl_decision","call_id":"c","decision":"EDIT","modified_arguments":[1]}',
      'GW_ERR_WS_INVALID_FRAME',
      /must be a JSON object/,
    ],
    [
      'tool_result with a non-string error',
      '{"type":"tool_result","call_id":"c","error":{}}',
      'GW_ERR_WS_INVALID_FRAME',
      /"error" must be a string/,
    ],
    [
      'resume without last_seq',
      '{"type":"resume"}',
      'GW_ERR_WS_INVALID_FRAME',
      /"last_seq" is required and must be a non-negative integer/,
    ],
    ['resume with a negative last_seq', '{"type":"resume","last_seq":-1}', 'GW_ERR_WS_INVALID_FRAME', /non-negative integer/],
    ['resume with a fractional last_seq', '{"type":"resume","last_seq":1.5}', 'GW_ERR_WS_INVALID_FRAME', /non-negative integer/],
    ['resume with a string last_seq', '{"type":"resume","last_seq":"3"}', 'GW_ERR_WS_INVALID_FRAME', /non-negative integer/],
    [
      'a non-string traceparent',
      '{"type":"user_message","content":"x","traceparent":1}',
      'GW_ERR_WS_INVALID_FRAME',
      /traceparent must be a string/,
    ],
  ])('rejects %s with %s', (_name, text, code, message) => {
    const parsed = parseFrame(text);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) {
      expect(parsed.error.code).toBe(code);
      expect(parsed.message).toMatch(message);
    }
  });
});
