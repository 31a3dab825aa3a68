/** Tool calls assembled from streamed deltas, and OpenAI errors read from bodies and stream events. */
import { describe, expect, it } from 'vitest';
import {
  addToolCallDeltas,
  openAIErrorOf,
  readOpenAIErrorBody,
  ToolCallAssembler,
  type ToolCall,
  type ToolCallDelta,
} from '../src/index.ts';

const call = (id: string, name: string, args: string): ToolCall => ({ id, type: 'function', function: { name, arguments: args } });

describe('openai-parsing', () => {
  describe('ToolCallAssembler', () => {
    // each row: the tool_calls of successive chunks, and the calls they make
    it.each<[string, (ToolCallDelta[] | undefined)[], ToolCall[]]>([
      [
        'one call in one piece',
        [[{ index: 0, id: 'a', type: 'function', function: { name: 'read_file', arguments: '{"path":"a.py"}' } }]],
        [call('a', 'read_file', '{"path":"a.py"}')],
      ],
      [
        'arguments split at odd places (inside a key, after a backslash, between the halves of a surrogate pair)',
        [
          [{ index: 0, id: 'a', type: 'function', function: { name: 'write_file', arguments: '' } }],
          [{ index: 0, function: { arguments: '{"pa' } }],
          [{ index: 0, function: { arguments: 'th":"a\\' } }],
          [{ index: 0, function: { arguments: '"b.py","text":"при\ud83d' } }],
          [{ index: 0, function: { arguments: '\ude00"}' } }],
        ],
        [call('a', 'write_file', '{"path":"a\\"b.py","text":"при😀"}')],
      ],
      [
        'a name that comes in pieces',
        [[{ index: 0, id: 'a', function: { name: 'read_' } }], [{ index: 0, function: { name: 'file', arguments: '{}' } }]],
        [call('a', 'read_file', '{}')],
      ],
      [
        'several calls interleaved, out of order',
        [
          [{ index: 1, id: 'b', type: 'function', function: { name: 'two', arguments: '{"x"' } }],
          [
            { index: 0, id: 'a', function: { name: 'one', arguments: '{' } },
            { index: 1, function: { arguments: ':1' } },
          ],
          [{ index: 2, id: 'c', function: { name: 'three', arguments: '{}' } }],
          [
            { index: 1, function: { arguments: '}' } },
            { index: 0, function: { arguments: '}' } },
          ],
        ],
        [call('a', 'one', '{}'), call('b', 'two', '{"x":1}'), call('c', 'three', '{}')],
      ],
      [
        'chunks without tool calls in between',
        [
          [{ index: 0, id: 'a', function: { name: 'f', arguments: '{"a"' } }],
          undefined,
          [],
          [{ index: 0, function: { arguments: ':2}' } }],
        ],
        [call('a', 'f', '{"a":2}')],
      ],
      [
        'an index left out (one call streamed by a server that omits it)',
        [[{ id: 'a', function: { name: 'f', arguments: '{' } } as ToolCallDelta], [{ function: { arguments: '}' } } as ToolCallDelta]],
        [call('a', 'f', '{}')],
      ],
      [
        'an id that comes late',
        [[{ index: 0, function: { name: 'f', arguments: '{}' } }], [{ index: 0, id: 'late' }]],
        [call('late', 'f', '{}')],
      ],
      ['a gap in the indexes', [[{ index: 2, id: 'c', function: { name: 'f', arguments: '{}' } }]], [call('c', 'f', '{}')]],
      ['no tool calls at all', [undefined, []], []],
    ])('%s', (_name, chunks, expected) => {
      const a = new ToolCallAssembler();
      for (const deltas of chunks) a.add(deltas);
      expect(a.take()).toEqual(expected);
      expect(a.take()).toEqual([]);
    });

    it('starts afresh after take', () => {
      const a = new ToolCallAssembler();
      a.add([{ index: 0, id: 'a', function: { name: 'f', arguments: '{}' } }]);
      a.take();
      a.add([{ index: 0, id: 'b', function: { name: 'g', arguments: '[]' } }]);
      expect(a.take()).toEqual([call('b', 'g', '[]')]);
    });
  });

  describe('addToolCallDeltas', () => {
    it('fills a sparse array by index (what a non-streaming answer is built from)', () => {
      const calls: ToolCall[] = [];
      addToolCallDeltas(calls, [{ index: 1, id: 'b', function: { name: 'g', arguments: '{}' } }]);
      addToolCallDeltas(calls, null);
      expect(calls.length).toBe(2);
      expect(calls[0]).toBeUndefined();
      expect(calls.filter(Boolean)).toEqual([call('b', 'g', '{}')]);
    });
  });

  describe('openAIErrorOf', () => {
    it.each<[string, unknown, ReturnType<typeof openAIErrorOf>]>([
      [
        'an OpenAI error',
        { error: { message: 'Rate limit', type: 'rate_limit_error', param: null, code: 'rate_limited' } },
        { message: 'Rate limit', type: 'rate_limit_error', code: 'rate_limited' },
      ],
      ['a numeric code', { error: { message: 'busy', code: 429 } }, { message: 'busy', type: null, code: '429' }],
      ['an error without a message', { error: {} }, { message: undefined, type: null, code: null }],
      ['a bare string error', { error: 'model not found' }, { message: 'model not found', type: null, code: null }],
      ['another set value', { error: true }, { message: undefined, type: null, code: null }],
      ['a chunk', { id: 'x', choices: [{ index: 0, delta: { content: 'hi' }, finish_reason: null }] }, undefined],
      ['a null error', { error: null }, undefined],
      ['an empty string error', { error: '' }, undefined],
      ['not an object', 'error', undefined],
      ['nothing', undefined, undefined],
    ])('%s', (_name, value, expected) => {
      expect(openAIErrorOf(value)).toEqual(expected);
    });
  });

  describe('readOpenAIErrorBody', () => {
    it.each<[string, string, ReturnType<typeof readOpenAIErrorBody>]>([
      [
        'a JSON error object',
        '{"error":{"message":"Upstream timed out","type":"timeout","param":null,"code":"upstream_timeout"}}',
        { message: 'Upstream timed out', type: 'timeout', code: 'upstream_timeout' },
      ],
      ['a JSON error string', '{"error":"model \\"x\\" not found"}', { message: 'model "x" not found', type: null, code: null }],
      ['a top-level message', '{"message":"Too Many Requests","code":429}', { message: 'Too Many Requests', type: null, code: '429' }],
      ['a FastAPI detail', '{"detail":"Not authenticated"}', { message: 'Not authenticated', type: null, code: null }],
      [
        'an error object without a message (the text stands in)',
        '{"error":{"code":"x"}}',
        { message: '{"error":{"code":"x"}}', type: null, code: 'x' },
      ],
      [
        'a JSON body of another shape',
        '{"detail":[{"loc":["body"]}]}',
        { message: '{"detail":[{"loc":["body"]}]}', type: null, code: null },
      ],
      ['a JSON string', '"oops"', { message: '"oops"', type: null, code: null }],
      ['plain text', 'Bad Gateway', { message: 'Bad Gateway', type: null, code: null }],
      [
        'HTML',
        '<html><body>502 Bad Gateway</body></html>',
        { message: '<html><body>502 Bad Gateway</body></html>', type: null, code: null },
      ],
      ['an empty body', '', { message: '', type: null, code: null }],
    ])('%s', (_name, text, expected) => {
      expect(readOpenAIErrorBody(text)).toEqual(expected);
    });

    it('cuts a text that is no error body at maxChars', () => {
      expect(readOpenAIErrorBody('x'.repeat(1000)).message).toHaveLength(300);
      expect(readOpenAIErrorBody('abcdef', 3).message).toBe('abc');
    });
  });
});
