/**
 * A tool call a person edited before approving it, end to end: the IDE runs the edited call, and
 * the LLM (every request it gets is recorded by a pass-through in front of the llm-proxy) and
 * `GET /sessions/:id/history` both see the arguments that ran, and that a person edited them.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { FrameClient, startStack, type Stack } from '../helpers/stack.ts';

interface ChatRequest {
  messages: {
    role: string;
    content: string;
    tool_call_id?: string;
    tool_calls?: { id: string; type: string; function: { name: string; arguments: string } }[];
  }[];
}

/** Forwards every request to `target` unchanged (streams included) and keeps the chat requests' bodies. */
async function startRecorder(): Promise<{ url: string; target: { url: string }; requests: ChatRequest[]; close(): Promise<void> }> {
  const target = { url: '' };
  const requests: ChatRequest[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.url?.startsWith('/v1/chat/completions')) requests.push(JSON.parse(body.toString('utf8')) as ChatRequest);
      const upstream = http.request(new URL(req.url ?? '/', target.url), { method: req.method, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      upstream.on('error', () => res.destroy());
      upstream.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    target,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe('an edited approval, as the LLM and the history see it', () => {
  let stack: Stack;
  let token: string;
  let recorder: Awaited<ReturnType<typeof startRecorder>>;
  beforeAll(async () => {
    recorder = await startRecorder();
    // the recorder speaks HTTP/1.1 only: the runtime's setting for an LLM URL that is not the llm-proxy
    stack = await startStack({
      databaseUrl: inject('databaseUrl'),
      env: { runtime: { AGENT_RUNTIME__LLM_PROXY_URL: recorder.url, AGENT_RUNTIME__LLM_PROXY_H2C_STREAMS: '0' } },
    });
    recorder.target.url = stack.url.llm;
    token = await stack.token();
  });
  afterAll(async () => {
    await stack?.close();
    await recorder?.close();
  });

  it('the LLM gets the call with the arguments that ran, and the result says a person edited them; /history shows both', async () => {
    const sessionId = `edited-${randomUUID()}`;
    const client = new FrameClient(`${stack.url.ws}/api/v1/ws/${sessionId}`, { authorization: `Bearer ${token}` });
    await client.open();
    const proposed = { path: 'c.py', content: 'B' };
    const edited = { path: 'c2.py', content: 'EDITED' };
    let seen = 0;
    const turn = async (frame: unknown) => {
      client.send(frame);
      const frames = await client.until((f) => f.is_final === true, seen);
      seen += frames.length;
      return frames.at(-1)!;
    };

    const call = await turn({ type: 'user_message', content: `implement it [[mock:tool_call write_file ${JSON.stringify(proposed)}]]` });
    expect(call).toMatchObject({ type: 'tool_call', tool_name: 'write_file', arguments: proposed, requires_approval: true });
    const run = await turn({ type: 'hitl_decision', call_id: call.call_id, decision: 'edit', modified_arguments: edited });
    expect(run).toMatchObject({ type: 'tool_call', call_id: call.call_id, arguments: edited, requires_approval: false });
    const before = recorder.requests.length;
    const answer = await turn({ type: 'tool_result', call_id: call.call_id, result: { success: true } });
    expect(answer).toMatchObject({ type: 'assistant_message', is_final: true });

    // what the LLM was sent to answer the tool result
    const sent = recorder.requests.slice(before).find((r) => r.messages.some((m) => m.role === 'tool'));
    expect(sent).toBeDefined();
    const assistant = sent!.messages.find((m) => m.tool_calls?.length)!;
    expect(assistant.tool_calls).toEqual([
      { id: call.call_id, type: 'function', function: { name: 'write_file', arguments: JSON.stringify(edited) } },
    ]);
    const results = sent!.messages.filter((m) => m.role === 'tool');
    expect(results).toHaveLength(1); // answered exactly once
    expect(results[0]!.tool_call_id).toBe(call.call_id);
    expect(results[0]!.content).toContain('The user edited the arguments of this tool call before approving it');
    expect(results[0]!.content).toContain(`You had proposed: ${JSON.stringify(proposed)}`);
    expect(results[0]!.content.endsWith('{"success":true}')).toBe(true);
    expect(JSON.stringify(sent)).not.toContain('original_tool_calls'); // history-only field, never sent to a provider

    // the history: the same messages, and the proposal in a field of its own
    const res = await fetch(`${stack.url.gateway}/api/v1/sessions/${sessionId}/history`, { headers: { authorization: `Bearer ${token}` } });
    const history = (await res.json()) as { messages: (ChatRequest['messages'][number] & { original_tool_calls?: unknown[] })[] };
    const stored = history.messages.find((m) => m.tool_calls?.length)!;
    expect(stored.tool_calls![0]!.function.arguments).toBe(JSON.stringify(edited));
    expect(stored.original_tool_calls).toEqual([
      { id: call.call_id, type: 'function', function: { name: 'write_file', arguments: JSON.stringify(proposed) } },
    ]);
    expect(history.messages.find((m) => m.role === 'tool')!.content).toBe(results[0]!.content);
    client.close();
  });

  it('an approval without edits is sent as the LLM proposed it, with no note', async () => {
    const sessionId = `approved-${randomUUID()}`;
    const client = new FrameClient(`${stack.url.ws}/api/v1/ws/${sessionId}`, { authorization: `Bearer ${token}` });
    await client.open();
    client.send({ type: 'user_message', content: 'implement it [[mock:tool_call write_file {"path":"d.py","content":"D"}]]' });
    const call = (await client.until((f) => f.is_final === true)).at(-1)!;
    client.send({ type: 'hitl_decision', call_id: call.call_id, decision: 'approve' });
    await client.until((f) => f.is_final === true && f.metadata !== undefined && (f.metadata as { approved?: boolean }).approved === true);
    const before = recorder.requests.length;
    client.send({ type: 'tool_result', call_id: call.call_id, result: 'written' });
    await client.until((f) => f.type === 'assistant_message' && f.is_final === true);
    const sent = recorder.requests.slice(before).find((r) => r.messages.some((m) => m.role === 'tool'))!;
    expect(sent.messages.find((m) => m.tool_calls?.length)!.tool_calls![0]!.function.arguments).toBe('{"path":"d.py","content":"D"}');
    expect(sent.messages.find((m) => m.role === 'tool')!.content).toBe('written');
    client.close();
  });
});
