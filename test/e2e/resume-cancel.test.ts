/**
 * A dropped client resumes on another gateway instance without missing a frame, while its turn
 * keeps running and is stored; a `cancel` frame stops a running turn. Two gateways; with Redis (CI)
 * also two runtimes sharing the frame log, so the resumed client reads a turn that runs on the
 * other runtime. Both ways the services can stream to each other: over h2c (the default of
 * GATEWAY__AGENT_STREAM_H2C_STREAMS and AGENT_RUNTIME__LLM_PROXY_H2C_STREAMS), where a gateway
 * leaving a turn's stream resets an HTTP/2 stream, which the runtime's SSE writer must see (this
 * test hung at frame 9 before sse.ts knew), and over HTTP/1.1 (both settings 0).
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { FrameClient, startStack, type Stack } from '../helpers/stack.ts';

type Frame = Record<string, unknown>;

describe.each([
  ['h2c', '32'],
  ['HTTP/1.1', '0'],
])('resume and cancel over real services, streaming to each other over %s', (_protocol, h2cStreams) => {
  let stack: Stack;
  let token: string;
  const redisUrl = inject('redisUrl');
  beforeAll(async () => {
    stack = await startStack({
      databaseUrl: inject('databaseUrl'),
      runtimes: redisUrl ? 2 : 1,
      gateways: 2,
      env: {
        runtime: { AGENT_RUNTIME__LLM_PROXY_H2C_STREAMS: h2cStreams, ...(redisUrl ? { AGENT_RUNTIME__REDIS_URL: redisUrl } : {}) },
        gateway: { GATEWAY__AGENT_STREAM_H2C_STREAMS: h2cStreams },
      },
    });
    token = await stack.token();
  });
  afterAll(() => stack?.close());

  const connect = async (gateway: number, sessionId: string, lastSeq?: number): Promise<FrameClient> => {
    const c = new FrameClient(`${stack.url.wss[gateway]}/api/v1/ws/${sessionId}${lastSeq !== undefined ? `?last_seq=${lastSeq}` : ''}`, {
      authorization: `Bearer ${token}`,
    });
    await c.open();
    return c;
  };

  it(`a client that drops mid-turn resumes on the other gateway${redisUrl ? ' (and runtime)' : ''} and misses no frame; the turn is stored`, async () => {
    const sessionId = `resume-${randomUUID()}`;
    const first = await connect(0, sessionId);
    first.send({ type: 'user_message', content: 'explain streams [[mock:words 60]] [[mock:token_delay 15]]' });
    await first.until((f) => typeof f.token === 'string' && (f.seq as number) >= 8);
    first.ws.terminate(); // the network drops: no close handshake
    const seen = [...first.frames];
    const lastSeq = Math.max(...seen.map((f) => f.seq as number));

    const second = await connect(1, sessionId, lastSeq);
    const rest = await second.until((f) => f.is_final === true);
    const all: Frame[] = [...seen, ...rest];
    const seqs = all.map((f) => f.seq as number);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1)); // 1, 2, 3 … without a gap or a repeat
    const final = all.at(-1)!;
    expect(final).toMatchObject({ type: 'assistant_message', is_final: true });
    // the 60 words streamed (several to a frame, AGENT_RUNTIME__TOKEN_FRAME_INTERVAL), each once
    const tokens = all.filter((f) => typeof f.token === 'string').map((f) => f.token as string);
    expect(tokens.join('').trim().split(/\s+/)).toHaveLength(60);
    expect(final.content).toBe(tokens.join(''));

    const res = await fetch(`${stack.url.gateways[1]}/api/v1/sessions/${sessionId}/history`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const { messages } = (await res.json()) as { messages: { role: string; content: string }[] };
    expect(messages.map((m) => m.role)).toEqual(['user', 'assistant']);
    expect(messages[1]!.content).toBe(final.content);

    // a later reconnect that saw everything gets nothing again, and the conversation goes on
    const third = await connect(0, sessionId, final.seq as number);
    third.send({ type: 'user_message', content: 'thanks [[mock:words 3]]' });
    const next = await third.until((f) => f.is_final === true);
    expect(next.every((f) => (f.seq as number) > (final.seq as number))).toBe(true);
    for (const c of [second, third]) c.close();
  }, 30_000);

  it('a cancel frame stops the running turn: a final frame says so, the partial answer is kept', async () => {
    const sessionId = `cancel-${randomUUID()}`;
    const c = await connect(0, sessionId);
    c.send({ type: 'user_message', content: 'explain everything [[mock:words 400]] [[mock:token_delay 20]]' });
    await c.until((f) => typeof f.token === 'string' && (f.seq as number) >= 5);
    c.send({ type: 'ping', timestamp: 42 });
    const [pong] = (await c.until((f) => f.type === 'pong')).slice(-1);
    expect(pong).toMatchObject({ type: 'pong', timestamp: 42 });
    c.send({ type: 'cancel' });
    const frames = await c.until((f) => f.is_final === true);
    const final = frames.at(-1)!;
    expect(final).toMatchObject({ type: 'assistant_message', is_final: true, metadata: { cancelled: true } });
    const tokens = c.frames.filter((f) => typeof f.token === 'string').map((f) => f.token as string);
    expect(tokens.length).toBeLessThan(400);
    expect(final.content).toBe(tokens.join(''));

    const res = await fetch(`${stack.url.gateway}/api/v1/sessions/${sessionId}/history`, { headers: { authorization: `Bearer ${token}` } });
    const { messages } = (await res.json()) as { messages: { role: string; content: string }[] };
    expect(messages.map((m) => m.role)).toEqual(['user', 'assistant']);
    expect(messages[1]!.content).toBe(final.content);

    // nothing runs now: a second cancel says so, and the next turn works
    c.send({ type: 'cancel' });
    expect((await c.until((f) => f.type === 'error', frames.length)).at(-1)).toMatchObject({ code: 'GW_ERR_NOTHING_TO_CANCEL' });
    c.send({ type: 'user_message', content: 'short one [[mock:words 3]]' });
    expect((await c.until((f) => f.is_final === true && f.type === 'assistant_message', c.frames.length)).at(-1)).toMatchObject({
      content: 'w0 w1 w2',
    });
    c.close();
  }, 30_000);

  it(`a cancel from a second connection on the other gateway${redisUrl ? ' (and runtime)' : ''} is acknowledged; the turn ends with its cancelled final frame`, async () => {
    const sessionId = `cancel2-${randomUUID()}`;
    const running = await connect(0, sessionId);
    running.send({ type: 'user_message', content: 'explain everything [[mock:words 400]] [[mock:token_delay 20]]' });
    await running.until((f) => typeof f.token === 'string' && (f.seq as number) >= 5);
    const other = await connect(1, sessionId);
    other.send({ type: 'cancel' });
    const ack = (await other.until((f) => f.type === 'cancel_ack')).at(-1)!;
    expect(ack).toEqual({ type: 'cancel_ack', content: expect.any(String) }); // a control answer: no seq, no is_final
    const final = (await running.until((f) => f.is_final === true)).at(-1)!;
    expect(final).toMatchObject({ type: 'assistant_message', metadata: { cancelled: true }, seq: expect.any(Number) });
    expect(other.frames.some((f) => f.is_final === true)).toBe(false);
    // the cancelling connection can follow the session from there: it gets the cancelled final frame
    other.send({ type: 'resume', last_seq: (final.seq as number) - 1 });
    expect((await other.until((f) => f.is_final === true)).at(-1)).toEqual(final);
    for (const c of [running, other]) c.close();
  }, 30_000);
});
