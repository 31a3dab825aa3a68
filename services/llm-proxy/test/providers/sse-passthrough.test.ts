import { describe, expect, it } from 'vitest';
import { sseEventsIn } from '@codelab/service-kit';
import { SsePassthrough } from '../../src/providers/sse-passthrough.ts';

const ev = (o: unknown): string => `data: ${JSON.stringify(o)}\n\n`;
const chunk = (delta: object, finish: string | null = null, model = 'up-model') => ({
  id: 'c1',
  object: 'chat.completion.chunk',
  created: 1,
  model,
  choices: [{ index: 0, delta, finish_reason: finish }],
});
const usage = (model = 'up-model') => ({
  id: 'c1',
  object: 'chat.completion.chunk',
  created: 1,
  model,
  choices: [],
  usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
});
const datas = (text: string): unknown[] => [...sseEventsIn(text)].map((e) => JSON.parse(e.data));

describe('SsePassthrough', () => {
  const run = [ev(chunk({ content: 'a' })), ev(chunk({ content: 'b' })), ev(chunk({}, 'stop')), ev(usage()), 'data: [DONE]\n\n'].join('');

  it('forwards the events as they came, with the public model name, the usage recorded and [DONE] cut', () => {
    const f = new SsePassthrough('up-model', 'fake-llm', true).forward(run);
    expect(f.done).toBe(true);
    expect(f.error).toBeUndefined();
    expect(f.finish).toBe('stop');
    expect(f.usage).toEqual({ prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 });
    expect(f.events).toBe(4);
    expect(datas(f.text)).toEqual([
      chunk({ content: 'a' }, null, 'fake-llm'),
      chunk({ content: 'b' }, null, 'fake-llm'),
      chunk({}, 'stop', 'fake-llm'),
      usage('fake-llm'),
    ]);
    expect(f.text).not.toContain('[DONE]');
  });

  it('leaves the text untouched when the names agree, and drops the usage chunk the client did not ask for', () => {
    const f = new SsePassthrough('up-model', 'up-model', false).forward(run);
    expect(f.text).toBe(ev(chunk({ content: 'a' })) + ev(chunk({ content: 'b' })) + ev(chunk({}, 'stop')));
    expect(f.usage?.completion_tokens).toBe(2); // still recorded for the metrics
  });

  it('keeps the choices of a chunk that also carries usage, without the usage', () => {
    const both = { ...chunk({}, 'stop'), usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } };
    const f = new SsePassthrough('m', 'm', false).forward(ev(chunk({ content: 'a' })) + ev(both));
    expect(datas(f.text)).toEqual([chunk({ content: 'a' }), chunk({}, 'stop')]);
    expect(f.usage?.total_tokens).toBe(2);
  });

  it('stops at an error chunk: what came before it is forwarded and the error is reported', () => {
    const f = new SsePassthrough('m', 'm', true).forward(
      ev(chunk({ content: 'a' }, null, 'm')) + ev({ error: { message: 'overloaded' } }) + ev(chunk({ content: 'z' }, null, 'm')),
    );
    expect(f.error).toBe('overloaded');
    expect(datas(f.text)).toEqual([chunk({ content: 'a' }, null, 'm')]);
  });

  it('is not fooled by marker text inside content: escaped quotes never match', () => {
    const tricky = chunk({ content: '"error": [DONE] "usage":{ "finish_reason":"x"' }, null, 'm');
    const f = new SsePassthrough('m', 'm', true).forward(`${ev(tricky)}: "error": heartbeat\n\n`);
    expect([f.done, f.error, f.finish, f.usage]).toEqual([false, undefined, undefined, undefined]);
    expect(f.text).toBe(`${ev(tricky)}: "error": heartbeat\n\n`);
  });

  it('finds each marker past look-alikes of the pieces it is searched by (terror, reason, misusage)', () => {
    const lookalikes = { ...chunk({ content: 'a' }, null, 'm'), terror: 'x', reason: 'y', misusage: {} };
    const f = new SsePassthrough('m', 'm', true).forward(
      ev(lookalikes) + ev(chunk({}, 'length', 'm')) + ev(usage('m')) + ev({ error: { message: 'late' } }) + 'data: [DONE]\n\n',
    );
    expect([f.finish, f.usage?.total_tokens, f.error, f.done]).toEqual(['length', 5, 'late', false]);
    expect(datas(f.text)).toEqual([lookalikes, chunk({}, 'length', 'm'), usage('m')]);
    const quiet = new SsePassthrough('m', 'm', true).forward(ev(lookalikes));
    expect([quiet.finish, quiet.usage, quiet.error, quiet.done, quiet.events]).toEqual([undefined, undefined, undefined, false, 1]);
  });

  it('reports an event that is not JSON where it must parse one', () => {
    const f = new SsePassthrough('m', 'm', true).forward('data: {"usage":{ broken\n\n');
    expect(f.text).toBe('');
    expect(f.error).toMatch(/not JSON/);
  });
});
