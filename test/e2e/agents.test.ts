/**
 * The agent conversation end to end, over real WebSockets through the four real services and the
 * run's PostgreSQL, driven by the mock LLM's scenarios: routing to each agent, tool calls answered
 * with tool_result, approvals (tool_result, hitl_decision approve / edit / reject, expiry), a
 * forbidden tool, several tools in one answer, an explicit switch.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { FrameClient, startStack, type Stack } from '../helpers/stack.ts';

type Frame = Record<string, unknown>;

/** Every frame the suite received, checked against upstream's StreamChunk at the end. */
const received: Frame[] = [];

/** upstream's StreamChunk fields and their types (reference Part 2 §1.3); ours adds fields, never changes these. */
const UPSTREAM_FIELDS: Record<string, string> = {
  type: 'string',
  content: 'string',
  token: 'string',
  is_final: 'boolean',
  call_id: 'string',
  tool_name: 'string',
  arguments: 'object',
  requires_approval: 'boolean',
  error: 'string',
  metadata: 'object',
};
const UPSTREAM_TYPES = ['assistant_message', 'tool_call', 'error', 'done', 'switch_agent', 'agent_switched', 'session_info'];

/** A conversation on one WebSocket: `turn` sends a frame and returns that turn's frames. */
class Conversation {
  private seen = 0;
  readonly client: FrameClient;
  readonly sessionId: string;

  constructor(client: FrameClient, sessionId: string) {
    this.client = client;
    this.sessionId = sessionId;
  }
  async turn(frame: unknown): Promise<Frame[]> {
    this.client.send(frame);
    const frames = await this.client.until((f) => f.is_final === true, this.seen);
    this.seen += frames.length;
    received.push(...frames);
    return frames;
  }
  close(): void {
    this.client.close();
  }
}

const toolCall = (name: string, args: object): string => `[[mock:tool_call ${name} ${JSON.stringify(args)}]]`;

describe('agents, tools and approvals over the WebSocket', () => {
  let stack: Stack;
  let token: string;
  let db: pg.Pool;
  beforeAll(async () => {
    stack = await startStack({ databaseUrl: inject('databaseUrl'), env: { runtime: { AGENT_RUNTIME__APPROVAL_TIMEOUT: '4' } } });
    token = await stack.token();
    db = new pg.Pool({ connectionString: inject('databaseUrl'), max: 1 });
  });
  afterAll(async () => {
    await db?.end();
    await stack?.close();
  });

  const open = async (): Promise<Conversation> => {
    const sessionId = `agents-${randomUUID()}`;
    const client = new FrameClient(`${stack.url.ws}/api/v1/ws/${sessionId}`, { authorization: `Bearer ${token}` });
    await client.open();
    return new Conversation(client, sessionId);
  };
  const get = async (path: string) => {
    const res = await fetch(`${stack.url.gateway}${path}`, { headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const history = async (sessionId: string) =>
    (await get(`/api/v1/sessions/${sessionId}/history`)).body.messages as {
      role: string;
      content: string;
      tool_call_id?: string;
      tool_calls?: { id: string; function: { name: string } }[];
    }[];
  const toolRow = async (sessionId: string, callId: string) =>
    (
      await db.query('SELECT status, decision, decision_reason, final_arguments FROM tool_calls WHERE session_id = $1 AND call_id = $2', [
        sessionId,
        callId,
      ])
    ).rows[0] as Record<string, unknown>;

  it.each([
    ['Please implement a linked list', 'coder'],
    ['Design the architecture of the billing module', 'architect'],
    ['Why does the build crash on start?', 'debug'],
    ['Explain what a closure is', 'ask'],
  ])('routes "%s" to the %s agent (whole-word classification), then the agent answers', async (content, agent) => {
    const c = await open();
    const frames = await c.turn({ type: 'user_message', content, role: 'user' });
    expect(frames[0]).toMatchObject({
      type: 'agent_switched',
      is_final: false,
      from_agent: 'orchestrator',
      to_agent: agent,
      metadata: { from_agent: 'orchestrator', to_agent: agent, classification_method: 'llm' },
    });
    expect(frames.at(-1)).toMatchObject({ type: 'assistant_message', is_final: true });
    expect(frames.filter((f) => f.token).length).toBeGreaterThanOrEqual(2);
    // sticky: the next message goes straight to the same agent
    const next = await c.turn({ type: 'user_message', content: 'and one more thing' });
    expect(next.some((f) => f.type === 'agent_switched')).toBe(false);
    expect((await get(`/api/v1/agents/${c.sessionId}/current`)).body).toMatchObject({ context: { current_agent: agent } });
    c.close();
  });

  it('a read-only tool call goes to the IDE without approval; its tool_result continues the agent', async () => {
    const c = await open();
    const frames = await c.turn({
      type: 'user_message',
      content: `explain src/app.ts ${toolCall('read_file', { path: 'src/app.ts' })}`,
      role: 'user',
    });
    const call = frames.at(-1)!;
    expect(call).toMatchObject({
      type: 'tool_call',
      tool_name: 'read_file',
      arguments: { path: 'src/app.ts' },
      requires_approval: false,
      is_final: true,
    });
    const answer = await c.turn({ type: 'tool_result', call_id: call.call_id, result: { content: 'export const app = 1;' } });
    expect(answer.at(-1)).toMatchObject({ type: 'assistant_message', is_final: true });
    expect(String(answer.at(-1)!.content)).toContain('read_file returned');
    const h = await history(c.sessionId);
    expect(h.map((m) => m.role)).toEqual(['user', 'assistant', 'tool', 'assistant']);
    expect(h[1]!.tool_calls![0]).toMatchObject({ id: call.call_id, function: { name: 'read_file' } });
    expect(h[2]).toMatchObject({ tool_call_id: call.call_id, content: '{"content":"export const app = 1;"}' });
    expect(await toolRow(c.sessionId, String(call.call_id))).toMatchObject({ status: 'completed' });
    c.close();
  });

  const askToWrite = async (c: Conversation, path = 'src/list.ts'): Promise<Frame> => {
    const frames = await c.turn({
      type: 'user_message',
      content: `implement it ${toolCall('write_file', { path, content: 'export {}' })}`,
      role: 'user',
    });
    const call = frames.at(-1)!;
    expect(call).toMatchObject({ type: 'tool_call', tool_name: 'write_file', requires_approval: true, is_final: true });
    return call;
  };

  it('a write needs approval: pending until the IDE answers with tool_result (success approves)', async () => {
    const c = await open();
    const call = await askToWrite(c);
    const pending = await get(`/api/v1/sessions/${c.sessionId}/pending-approvals`);
    expect(pending.body).toMatchObject({
      count: 1,
      pending_approvals: [
        { call_id: call.call_id, request_id: call.call_id, tool_name: 'write_file', subject: 'write_file', request_type: 'tool' },
      ],
    });
    const answer = await c.turn({ type: 'tool_result', call_id: call.call_id, result: { success: true } });
    expect(answer.at(-1)).toMatchObject({ type: 'assistant_message', is_final: true });
    expect(await toolRow(c.sessionId, String(call.call_id))).toMatchObject({ status: 'completed', decision: 'approve' });
    expect((await get(`/api/v1/sessions/${c.sessionId}/pending-approvals`)).body).toMatchObject({ count: 0 });
    c.close();
  });

  it('tool_result with an error rejects a pending approval (upstream IDE rejection)', async () => {
    const c = await open();
    const call = await askToWrite(c);
    await c.turn({ type: 'tool_result', call_id: call.call_id, error: 'Операция отклонена: write_file' });
    expect(await toolRow(c.sessionId, String(call.call_id))).toMatchObject({
      status: 'rejected',
      decision: 'reject',
      decision_reason: 'Tool execution failed: Операция отклонена: write_file',
    });
    expect((await history(c.sessionId))[2]).toMatchObject({ role: 'tool', content: 'Error: Операция отклонена: write_file' });
    c.close();
  });

  it('hitl_decision approve sends the IDE the call to execute; its tool_result finishes it', async () => {
    const c = await open();
    const call = await askToWrite(c);
    const approved = await c.turn({ type: 'hitl_decision', call_id: call.call_id, decision: 'approve' });
    expect(approved).toHaveLength(1);
    expect(approved[0]).toMatchObject({
      type: 'tool_call',
      call_id: call.call_id,
      tool_name: 'write_file',
      arguments: call.arguments,
      requires_approval: false,
      is_final: true,
      metadata: { approved: true, decision: 'approve' },
    });
    const answer = await c.turn({ type: 'tool_result', call_id: call.call_id, result: 'written' });
    expect(answer.at(-1)).toMatchObject({ type: 'assistant_message', is_final: true });
    expect(await toolRow(c.sessionId, String(call.call_id))).toMatchObject({ status: 'completed', decision: 'approve' });
    c.close();
  });

  it('hitl_decision edit sends the IDE the edited arguments', async () => {
    const c = await open();
    const call = await askToWrite(c);
    const edited = { path: 'src/v2.ts', content: 'export const v = 2;' };
    const frames = await c.turn({ type: 'hitl_decision', call_id: call.call_id, decision: 'EDIT', modified_arguments: edited });
    expect(frames[0]).toMatchObject({
      type: 'tool_call',
      call_id: call.call_id,
      arguments: edited,
      requires_approval: false,
      metadata: { decision: 'edit' },
    });
    expect(await toolRow(c.sessionId, String(call.call_id))).toMatchObject({
      status: 'approved',
      decision: 'edit',
      final_arguments: edited,
    });
    await c.turn({ type: 'tool_result', call_id: call.call_id, result: { success: true } });
    c.close();
  });

  it('hitl_decision reject answers the LLM with the feedback and the agent goes on', async () => {
    const c = await open();
    const call = await askToWrite(c);
    const frames = await c.turn({ type: 'hitl_decision', call_id: call.call_id, decision: 'reject', feedback: 'Too risky' });
    expect(frames.at(-1)).toMatchObject({ type: 'assistant_message', is_final: true });
    const h = await history(c.sessionId);
    expect(JSON.parse(h[2]!.content)).toEqual({ status: 'rejected', tool_name: 'write_file', feedback: 'Too risky' });
    // a decision on a call that is no longer pending is refused with a clear error
    const again = await c.turn({ type: 'hitl_decision', call_id: call.call_id, decision: 'approve' });
    expect(again.at(-1)).toMatchObject({ type: 'error', code: 'RT_ERR_NO_PENDING_APPROVAL', is_final: true });
    c.close();
  });

  it('an approval nobody answers expires: rejected with reason expired, answered for the LLM, late answers refused', async () => {
    const c = await open();
    const call = await askToWrite(c);
    await expect
      .poll(async () => (await toolRow(c.sessionId, String(call.call_id))).status, { timeout: 10_000, interval: 200 })
      .toBe('rejected');
    expect(await toolRow(c.sessionId, String(call.call_id))).toMatchObject({ decision: 'expired', decision_reason: 'expired' });
    expect((await get(`/api/v1/sessions/${c.sessionId}/pending-approvals`)).body).toMatchObject({ count: 0 });
    expect(JSON.parse((await history(c.sessionId))[2]!.content)).toMatchObject({ status: 'rejected', reason: 'expired' });
    const late = await c.turn({ type: 'tool_result', call_id: call.call_id, result: { success: true } });
    expect(late.at(-1)).toMatchObject({ type: 'error', code: 'RT_ERR_APPROVAL_EXPIRED', is_final: true });
    // the conversation goes on
    const next = await c.turn({ type: 'user_message', content: 'never mind, implement something else' });
    expect(next.at(-1)).toMatchObject({ type: 'assistant_message', is_final: true });
    c.close();
  });

  it('a tool the agent may not use becomes an error result for the LLM, never a call to the IDE nor an orphan in history', async () => {
    const c = await open();
    const frames = await c.turn({
      type: 'user_message',
      content: `explain and save it ${toolCall('write_file', { path: 'notes.txt', content: 'x' })}`,
      role: 'user',
    });
    expect(frames[0]).toMatchObject({ type: 'agent_switched', to_agent: 'ask' });
    expect(frames.some((f) => f.type === 'tool_call')).toBe(false);
    expect(frames.at(-1)).toMatchObject({ type: 'assistant_message', is_final: true });
    const h = await history(c.sessionId);
    expect(h.map((m) => m.role)).toEqual(['user', 'assistant', 'tool', 'assistant']);
    expect(h[2]!.tool_call_id).toBe(h[1]!.tool_calls![0]!.id);
    expect(h[2]!.content).toMatch(/^Error: Ask agent cannot modify files/);
    c.close();
  });

  it('the architect writes markdown only', async () => {
    const c = await open();
    await c.turn({ type: 'switch_agent', agent_type: 'architect' });
    const md = await c.turn({
      type: 'user_message',
      content: `write the plan ${toolCall('write_file', { path: 'docs/plan.md', content: '# Plan' })}`,
    });
    expect(md.at(-1)).toMatchObject({ type: 'tool_call', tool_name: 'write_file', requires_approval: true });
    const code = await c.turn({
      type: 'user_message',
      content: `now the code ${toolCall('write_file', { path: 'src/plan.ts', content: 'x' })}`,
    });
    expect(code.some((f) => f.type === 'tool_call')).toBe(false);
    const h = await history(c.sessionId);
    expect(h.at(-2)!.content).toMatch(/^Error: Architect agent can only create\/edit markdown \(\.md\) files/);
    c.close();
  });

  it('several tool calls in one answer are handled in turn; none is dropped', async () => {
    const c = await open();
    const frames = await c.turn({
      type: 'user_message',
      content: `explain the project ${toolCall('read_file', { path: 'a.ts' })} ${toolCall('list_files', { path: '.' })} ${toolCall('search_in_code', { query: 'TODO' })}`,
    });
    const names: unknown[] = [frames.at(-1)!.tool_name];
    let last = frames.at(-1)!;
    for (;;) {
      const next = await c.turn({ type: 'tool_result', call_id: last.call_id, result: `result of ${String(last.tool_name)}` });
      last = next.at(-1)!;
      if (last.type !== 'tool_call') break;
      names.push(last.tool_name);
    }
    expect(names).toEqual(['read_file', 'list_files', 'search_in_code']);
    expect(last).toMatchObject({ type: 'assistant_message', is_final: true });
    expect(String(last.content)).toContain('search_in_code returned');
    const h = await history(c.sessionId);
    expect(h.map((m) => m.role)).toEqual(['user', 'assistant', 'tool', 'tool', 'tool', 'assistant']);
    c.close();
  });

  it('switch_agent switches without an LLM call; agent_type on a message switches before the answer', async () => {
    const c = await open();
    const frames = await c.turn({ type: 'switch_agent', agent_type: 'architect', content: 'Design auth', reason: 'User requested' });
    expect(frames).toHaveLength(1);
    expect(frames[0]).toMatchObject({
      type: 'agent_switched',
      content: 'Switched to architect agent',
      is_final: true,
      from_agent: 'orchestrator',
      to_agent: 'architect',
      metadata: { from_agent: 'orchestrator', to_agent: 'architect', reason: 'User requested', confidence: 'high' },
    });
    const withAgent = await c.turn({ type: 'user_message', content: 'a question', agent_type: 'debug' });
    expect(withAgent[0]).toMatchObject({ type: 'agent_switched', from_agent: 'architect', to_agent: 'debug', is_final: false });
    const current = (await get(`/api/v1/agents/${c.sessionId}/current?include_history=true`)).body as {
      context: { current_agent: string; switch_count: number; switch_history: { to_agent: string }[] };
    };
    expect(current.context).toMatchObject({ current_agent: 'debug', switch_count: 2 });
    expect(current.context.switch_history.map((s) => s.to_agent)).toEqual(['architect', 'debug']);
    const bad = await c.turn({ type: 'switch_agent', agent_type: 'wizard' });
    expect(bad.at(-1)).toMatchObject({ type: 'error', code: 'RT_ERR_INVALID_AGENT' });
    c.close();
  });

  it('a client that connects again (without last_seq) gets the approvals still pending re-sent', async () => {
    const c = await open();
    const call = await askToWrite(c);
    c.close();
    const again = new FrameClient(`${stack.url.ws}/api/v1/ws/${c.sessionId}`, { authorization: `Bearer ${token}` });
    await again.open();
    const [resent] = await again.until((f) => f.type === 'tool_call');
    expect(resent).toMatchObject({
      call_id: call.call_id,
      tool_name: 'write_file',
      arguments: call.arguments,
      requires_approval: true,
      metadata: { resent: true },
    });
    again.send({ type: 'hitl_decision', call_id: call.call_id, decision: 'reject', feedback: 'not now' });
    expect((await again.until((f) => f.is_final === true && f.type === 'assistant_message')).at(-1)).toMatchObject({
      type: 'assistant_message',
    });
    again.close();
  });

  it("every frame sent parses with upstream's StreamChunk field names and types", () => {
    // what the suite sent before this test: every kind of frame it checks below
    expect(new Set(received.map((f) => f.type))).toEqual(new Set(['assistant_message', 'tool_call', 'error', 'agent_switched']));
    expect(received.some((f) => f.type === 'assistant_message' && f.is_final === false && typeof f.token === 'string')).toBe(true);
    for (const f of received) {
      expect(UPSTREAM_TYPES, JSON.stringify(f)).toContain(f.type);
      for (const [field, type] of Object.entries(UPSTREAM_FIELDS)) {
        if (field in f) expect(typeof f[field], `${field} of ${JSON.stringify(f)}`).toBe(type);
      }
      expect(typeof f.is_final).toBe('boolean');
      if (f.type === 'error') expect([typeof f.error, typeof f.content, typeof f.code]).toEqual(['string', 'string', 'string']);
      if (f.type === 'tool_call') expect(typeof f.requires_approval).toBe('boolean');
    }
  });

  it('a new user message answers the calls the IDE left open, so the history stays valid', async () => {
    const c = await open();
    const call = (await c.turn({ type: 'user_message', content: `look ${toolCall('read_file', { path: 'x' })}` })).at(-1)!;
    const next = await c.turn({ type: 'user_message', content: 'forget that, explain closures' });
    expect(next.at(-1)).toMatchObject({ type: 'assistant_message', is_final: true });
    const h = await history(c.sessionId);
    expect(h.map((m) => m.role)).toEqual(['user', 'assistant', 'tool', 'user', 'assistant']);
    expect(h[2]).toMatchObject({ tool_call_id: call.call_id });
    expect(await toolRow(c.sessionId, String(call.call_id))).toMatchObject({ status: 'superseded' });
    c.close();
  });
});
