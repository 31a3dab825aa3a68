/**
 * A conversation end to end, through the real services over real HTTP and WebSockets, persisted
 * in the run's PostgreSQL: streaming, history, and every kind of bad input.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import { FrameClient, startStack, type Stack } from '../helpers/stack.ts';

describe('conversation over the gateway WebSocket', () => {
  let stack: Stack;
  let token: string;

  beforeAll(async () => {
    stack = await startStack({ databaseUrl: inject('databaseUrl'), env: { gateway: { GATEWAY__WS_MAX_MESSAGE_BYTES: '4096' } } });
    token = await stack.token();
  });
  afterAll(() => stack?.close());

  const connect = async (sessionId = `s-${randomUUID()}`): Promise<{ client: FrameClient; sessionId: string }> => {
    const client = new FrameClient(`${stack.url.ws}/api/v1/ws/${sessionId}`, { authorization: `Bearer ${token}` });
    await client.open();
    return { client, sessionId };
  };
  const history = async (sessionId: string) => {
    const res = await fetch(`${stack.url.gateway}/api/v1/sessions/${sessionId}/history`, { headers: { authorization: `Bearer ${token}` } });
    return {
      status: res.status,
      body: (await res.json()) as { messages: { role: string; content: string; seq: number }[]; message_count: number },
    };
  };

  it('streams token frames (the first token alone, at once; later ones gathered), then one final frame whose content is the concatenated tokens, and stores both messages', async () => {
    const { client, sessionId } = await connect();
    client.send({ type: 'user_message', content: 'Explain dependency injection', role: 'user' });
    const frames = await client.until((f) => f.is_final === true);
    const tokens = frames.filter((f) => f.type === 'assistant_message' && f.is_final === false);
    const final = frames.at(-1)!;
    expect(tokens.length).toBeGreaterThanOrEqual(2);
    expect(final).toMatchObject({ type: 'assistant_message', is_final: true });
    expect(final.content).toBe(tokens.map((f) => f.token).join(''));
    // the mock streams a word per chunk: the first frame is the first word alone (not held back)
    expect(tokens[0]!.token).toBe(/^\S+\s*/.exec(String(final.content))![0]);
    // null fields are omitted, upstream field names are kept
    for (const f of frames) for (const v of Object.values(f)) expect(v).not.toBeNull();
    expect(Object.keys(tokens[0]!).sort()).toEqual(['is_final', 'seq', 'token', 'type']);
    // the orchestrator routed the first message ("explain" → ask) before the answer streamed
    expect(frames[0]).toMatchObject({
      type: 'agent_switched',
      from_agent: 'orchestrator',
      to_agent: 'ask',
      metadata: { from_agent: 'orchestrator', to_agent: 'ask' },
    });
    // every frame of the turn is numbered, in order
    expect(frames.map((f) => f.seq)).toEqual(frames.map((_, i) => i + 1));

    const h = await history(sessionId);
    expect(h.status).toBe(200);
    expect(h.body.messages.map((m) => [m.role, m.content])).toEqual([
      ['user', 'Explain dependency injection'],
      ['assistant', final.content],
    ]);
    expect(h.body.messages.map((m) => m.seq)).toEqual([1, 2]);
    client.close();
  });

  it('keeps later turns in order on one connection and appends to history without rewriting it', async () => {
    const { client, sessionId } = await connect();
    client.send({ type: 'user_message', content: 'first', role: 'user' });
    client.send({ type: 'user_message', content: 'second' }); // role defaults to "user"
    const first = await client.until((f) => f.is_final === true);
    const second = await client.until((f) => f.is_final === true, first.length);
    expect(String(first.at(-1)!.content)).toContain('"first"');
    expect(String(second.at(-1)!.content)).toContain('"second"');
    const h = await history(sessionId);
    expect(h.body.messages.map((m) => [m.seq, m.role, m.content])).toEqual([
      [1, 'user', 'first'],
      [2, 'assistant', first.at(-1)!.content],
      [3, 'user', 'second'],
      [4, 'assistant', second.at(-1)!.content],
    ]);
    client.close();
  });

  describe('bad input gets an error frame and the connection stays usable', () => {
    const cases: [string, string | Buffer, string, RegExp][] = [
      ['malformed JSON', '{"type": "user_message", ', 'GW_ERR_WS_INVALID_JSON', /Invalid JSON message/],
      ['a JSON array', '[1,2]', 'GW_ERR_WS_INVALID_JSON', /expected a JSON object/],
      [
        'an unknown type',
        JSON.stringify({ type: 'make_coffee', content: 'x' }),
        'GW_ERR_WS_UNKNOWN_TYPE',
        /Unknown message type: make_coffee/,
      ],
      ['no type', JSON.stringify({ content: 'x' }), 'GW_ERR_WS_INVALID_FRAME', /Message type is required/],
      ['a missing content', JSON.stringify({ type: 'user_message', role: 'user' }), 'GW_ERR_WS_INVALID_FRAME', /"content" is required/],
      ['an empty content', JSON.stringify({ type: 'user_message', content: '  ' }), 'GW_ERR_WS_INVALID_FRAME', /must not be empty/],
      [
        'a bad role',
        JSON.stringify({ type: 'user_message', content: 'x', role: 'wizard' }),
        'GW_ERR_WS_INVALID_FRAME',
        /"role" must be one of/,
      ],
      [
        'a tool_result without call_id',
        JSON.stringify({ type: 'tool_result', result: {} }),
        'GW_ERR_WS_INVALID_FRAME',
        /"call_id" is required/,
      ],
      ['a binary frame', Buffer.from([1, 2, 3]), 'GW_ERR_WS_BINARY_FRAME', /Binary frames are not supported/],
    ];
    it.each(cases)('%s', async (_name, payload, code, message) => {
      const { client } = await connect();
      client.ws.send(payload);
      const error = (await client.until((f) => f.type === 'error')).at(-1);
      expect(error).toMatchObject({ type: 'error', code, is_final: true });
      expect(error!.content).toMatch(message);
      expect(error!.error).toBe(error!.content); // both upstream error fields
      client.send({ type: 'user_message', content: 'still there?' });
      const after = await client.until((f) => f.is_final === true && f.type === 'assistant_message', 1);
      expect(String(after.at(-1)!.content)).toContain('still there?');
      client.close();
    });
  });

  it('closes with 1009 on a frame over GATEWAY__WS_MAX_MESSAGE_BYTES', async () => {
    const { client } = await connect();
    client.send({ type: 'user_message', content: 'x'.repeat(5000) });
    expect(await client.closed()).toBe(1009);
  });

  it('refuses the handshake with 401 without a token, with a bad token, and accepts ?access_token=', async () => {
    const url = `${stack.url.ws}/api/v1/ws/s-${randomUUID()}`;
    for (const headers of [{}, { authorization: 'Bearer not-a-jwt' }, { authorization: `Bearer ${token}x` }] as Record<string, string>[]) {
      const c = new FrameClient(url, headers);
      await expect(c.open()).rejects.toMatchObject({ statusCode: 401 });
    }
    const viaQuery = new FrameClient(`${url}?access_token=${encodeURIComponent(token)}`);
    await viaQuery.open();
    viaQuery.close();
  });

  it('answers REST calls without a valid token with 401 and a JSON error', async () => {
    for (const headers of [{}, { authorization: 'Bearer nope' }] as Record<string, string>[]) {
      const res = await fetch(`${stack.url.gateway}/api/v1/sessions`, { headers });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect(await res.json()).toMatchObject({ error: { code: 'GW_ERR_UNAUTHORIZED' } });
    }
  });

  it('creates and lists sessions over REST, with a true total', async () => {
    const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const id = `s-${randomUUID()}`;
    const created = await fetch(`${stack.url.gateway}/api/v1/sessions`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ session_id: id }),
    });
    expect(created.status).toBe(201);
    expect(await created.json()).toMatchObject({ id, message_count: 0, is_active: true, current_agent: 'orchestrator' });
    const again = await fetch(`${stack.url.gateway}/api/v1/sessions`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ session_id: id }),
    });
    expect(again.status).toBe(409);
    const generated = await fetch(`${stack.url.gateway}/api/v1/sessions`, {
      method: 'POST',
      headers: { authorization: auth.authorization },
    });
    expect(generated.status).toBe(201);
    const list = (await (await fetch(`${stack.url.gateway}/api/v1/sessions?limit=1&offset=0`, { headers: auth })).json()) as {
      sessions: unknown[];
      total: number;
      limit: number;
    };
    expect(list.sessions).toHaveLength(1);
    expect(list.limit).toBe(1);
    expect(list.total).toBeGreaterThanOrEqual(2);
    const missing = await fetch(`${stack.url.gateway}/api/v1/sessions/nope-${randomUUID()}/history`, { headers: auth });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: { code: 'RT_ERR_SESSION_NOT_FOUND' } });
  });
});

describe('an LLM failure mid-turn', () => {
  let stack: Stack;
  beforeAll(async () => {
    // The runtime talks to an llm-proxy port where nothing listens.
    stack = await startStack({
      databaseUrl: inject('databaseUrl'),
      env: { runtime: { AGENT_RUNTIME__LLM_PROXY_URL: 'http://127.0.0.1:9' } },
    });
  });
  afterAll(() => stack?.close());

  it('ends the turn with an error frame, keeps the user message, and the server stays alive', async () => {
    const token = await stack.token();
    const sessionId = `s-${randomUUID()}`;
    const client = new FrameClient(`${stack.url.ws}/api/v1/ws/${sessionId}`, { authorization: `Bearer ${token}` });
    await client.open();
    client.send({ type: 'user_message', content: 'will the LLM answer?' });
    const error = (await client.until((f) => f.type === 'error')).at(-1);
    expect(error).toMatchObject({ type: 'error', code: 'RT_ERR_LLM_UNAVAILABLE', is_final: true });
    expect(client.ws.readyState).toBe(WebSocket.OPEN);
    const res = await fetch(`${stack.url.gateway}/api/v1/sessions/${sessionId}/history`, { headers: { authorization: `Bearer ${token}` } });
    const body = (await res.json()) as { messages: { role: string; content: string }[] };
    expect(body.messages).toEqual([expect.objectContaining({ role: 'user', content: 'will the LLM answer?' })]);
    expect((await fetch(`${stack.url.runtime}/health`)).status).toBe(200);
    const ready = await fetch(`${stack.url.runtime}/ready`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ failed: ['llm-proxy'], checks: { postgres: 'ok' } });
    client.close();
  });
});

describe('gateway readiness', () => {
  it('checks the runtime and the auth service JWKS, and names what failed', async () => {
    const stack = await startStack({ databaseUrl: inject('databaseUrl') });
    try {
      const ok = await fetch(`${stack.url.gateway}/ready`);
      expect(await ok.json()).toMatchObject({ status: 'ready', checks: { runtime: 'ok', auth: 'ok' } });
      await stack.auth.app.close();
      const res = await fetch(`${stack.url.gateway}/ready`);
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ status: 'not_ready', failed: ['auth'], checks: { runtime: 'ok' } });
    } finally {
      await stack.close();
    }
  });
});
