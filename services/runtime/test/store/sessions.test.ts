/**
 * The session store: history read with people's edits of tool calls applied (what the LLM and
 * `/history` get), the activity rule behind `is_active` / `active_only`, and the agent switches.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import type { Database, Service } from '@codelab/service-kit';
import { applyEdits, historyMessage, SessionStore, summaryOf, toChatMessage, type StoredMessage } from '../../src/store/sessions.ts';
import { AgentContextStore } from '../../src/store/agent-context.ts';
import { ToolCallStore } from '../../src/store/tool-calls.ts';
import { buildPrompt } from '../../src/turn/history.ts';
import { openTestDb, queuedWrite, startRuntime } from '../routes/fixture.ts';

const proposed = { path: 'c.py', content: 'B' };
const edited = { path: 'c2.py', content: 'EDITED' };
const call = (id: string, args: object) => ({ id, type: 'function', function: { name: 'write_file', arguments: JSON.stringify(args) } });

let n = 0;
const msg = (role: StoredMessage['role'], content: string, extra: Partial<StoredMessage> = {}): StoredMessage => ({
  id: `m${++n}`,
  seq: n,
  created_at: new Date(0),
  role,
  content,
  ...extra,
});

describe('applyEdits and toChatMessage', () => {
  const history = [
    msg('user', 'write two files'),
    msg('assistant', '', { tool_calls: [call('c1', proposed), call('c2', { path: 'd.py', content: 'D' })] }),
    msg('tool', '{"success":true}', { tool_call_id: 'c1', name: 'write_file' }),
    msg('tool', 'written', { tool_call_id: 'c2', name: 'write_file' }),
  ];
  const read = applyEdits(history, [{ call_id: 'c1', arguments: proposed, final_arguments: edited }]);

  it('gives the edited call the arguments it was approved with (a JSON string) and keeps the proposal beside it', () => {
    expect(read[1]!.tool_calls).toEqual([call('c1', edited), call('c2', { path: 'd.py', content: 'D' })]);
    expect(read[1]!.original_tool_calls).toEqual(history[1]!.tool_calls);
    expect(history[1]!.tool_calls).toEqual([call('c1', proposed), call('c2', { path: 'd.py', content: 'D' })]); // not mutated
  });

  it("tells the LLM in the edited call's result, and only there, that a person edited it and what was proposed", () => {
    const chat = read.map(toChatMessage);
    expect(chat[2]!.content).toBe(
      `[The user edited the arguments of this tool call before approving it: the call shows the arguments it was approved with. You had proposed: ${JSON.stringify(proposed)}]\n\n{"success":true}`,
    );
    expect(chat[3]!.content).toBe('written');
    // valid for OpenAI-compatible providers: no extra fields, every call answered once
    expect(chat[1]).toEqual({
      role: 'assistant',
      content: '',
      tool_calls: [call('c1', edited), call('c2', { path: 'd.py', content: 'D' })],
    });
    const answered = chat.filter((m) => m.role === 'tool').map((m) => m.tool_call_id);
    expect(answered).toEqual(['c1', 'c2']);
  });

  it('the history shows the same messages, with original_tool_calls on the edited answer', () => {
    const h = read.map(historyMessage);
    expect(h[1]).toMatchObject({
      tool_calls: [call('c1', edited), expect.anything()],
      original_tool_calls: history[1]!.tool_calls,
      seq: 2,
    });
    expect(h[2]!.content).toBe(toChatMessage(read[2]!).content);
    expect('original_tool_calls' in h[0]!).toBe(false);
  });

  it('the prompt built for the LLM carries the edit', () => {
    const { messages } = buildPrompt('system', read, 100_000);
    expect(messages[2]!.tool_calls).toEqual([call('c1', edited), expect.anything()]);
    expect(String(messages[3]!.content)).toContain('You had proposed');
  });

  it('cuts a very long proposal in the note', () => {
    const [, , result] = applyEdits(history, [
      { call_id: 'c1', arguments: { path: 'c.py', content: 'x'.repeat(10_000) }, final_arguments: edited },
    ]);
    expect(toChatMessage(result!).content.length).toBeLessThan(2300);
    expect(toChatMessage(result!).content).toContain('… (cut)');
  });

  it('leaves history without edits as it is', () => {
    expect(applyEdits(history, [])).toBe(history);
    expect(history.map(toChatMessage)[2]!.content).toBe('{"success":true}');
  });
});

describe('SessionStore', () => {
  let runtime: Service; // runs the migrations
  let db: Database;
  let store: SessionStore;
  beforeAll(async () => {
    runtime = await startRuntime(inject('databaseUrl'));
    db = await openTestDb(inject('databaseUrl'));
    store = new SessionStore(db);
  });
  afterAll(async () => {
    await db?.close();
    await runtime?.app.close();
  });

  const newSession = async () => {
    const id = `store-${randomUUID()}`;
    await store.create(id, `user-${randomUUID()}`);
    return id;
  };

  it('messages() reads an edited call with the arguments it was approved with; an approval without change stays as proposed', async () => {
    const id = await newSession();
    const calls = new ToolCallStore(db);
    await store.append(id, { role: 'user', content: 'go' });
    await store.append(id, { role: 'assistant', content: '', tool_calls: [call('e1', proposed), call('a1', proposed)] });
    await calls.insertBatch(id, randomUUID(), [queuedWrite('e1', proposed), queuedWrite('a1', proposed, 1)]);
    for (const c of ['e1', 'a1']) await calls.markSent(id, c, 60_000);
    await calls.transition(id, 'e1', ['pending_approval'], 'approved', { decision: 'edit', finalArguments: edited });
    await calls.transition(id, 'a1', ['pending_approval'], 'approved', { decision: 'approve', finalArguments: proposed });
    await store.append(id, { role: 'tool', content: 'ok', tool_call_id: 'e1', name: 'write_file' });
    await store.append(id, { role: 'tool', content: 'ok', tool_call_id: 'a1', name: 'write_file' });
    // one statement (a turn reads its history once: one round trip to PostgreSQL, not two)
    let statements = 0;
    const counting: Database = Object.create(db, {
      query: {
        value: (...args: Parameters<Database['query']>) => {
          statements++;
          return db.query(...args);
        },
      },
    });
    const read = await new SessionStore(counting).messages(id);
    expect(statements).toBe(1);
    expect(read.map((m) => [m.role, m.seq])).toEqual([
      ['user', 1],
      ['assistant', 2],
      ['tool', 3],
      ['tool', 4],
    ]);
    expect(read[1]!.tool_calls).toEqual([call('e1', edited), call('a1', proposed)]);
    expect(read[1]!.original_tool_calls).toEqual([call('e1', proposed), call('a1', proposed)]);
    expect(read[2]!.edited_from).toEqual(proposed);
    expect(read[3]!.edited_from).toBeUndefined();
  });

  it('messages() of a session without messages, or without edits, reads them as stored', async () => {
    const id = await newSession();
    expect(await store.messages(id)).toEqual([]);
    await store.append(id, { role: 'user', content: 'hello' });
    await store.append(id, { role: 'assistant', content: 'hi', tool_calls: [call('x1', proposed)] });
    const read = await store.messages(id);
    expect(read.map((m) => [m.role, m.content, m.original_tool_calls, m.edited_from])).toEqual([
      ['user', 'hello', undefined, undefined],
      ['assistant', 'hi', undefined, undefined],
    ]);
    expect(read[1]!.tool_calls).toEqual([call('x1', proposed)]);
  });

  describe('the activity rule (is_active, active_only)', () => {
    const isActive = async (s: SessionStore, id: string) => (await s.find(id))!.is_active;
    const ago = (id: string, seconds: number) =>
      db.query(`UPDATE sessions SET last_activity = now() - $2 * interval '1 second' WHERE id = $1`, [id, seconds]);

    it('is active within the idle timeout after the last message, inactive after it', async () => {
      const id = await newSession();
      await ago(id, 120);
      expect(await isActive(new SessionStore(db, { idleTimeoutSeconds: 300 }), id)).toBe(true);
      expect(await isActive(new SessionStore(db, { idleTimeoutSeconds: 60 }), id)).toBe(false);
      expect(await isActive(store, id)).toBe(true); // the default: one hour
      await ago(id, 7200);
      expect(await isActive(store, id)).toBe(false);
      await store.append(id, { role: 'user', content: 'hello again' });
      expect(await isActive(store, id)).toBe(true);
    });

    it('stays active while a turn holds the session, and while a tool call waits', async () => {
      const short = new SessionStore(db, { idleTimeoutSeconds: 60 });
      const id = await newSession();
      await ago(id, 7200);
      await db.query(`UPDATE sessions SET lease_owner = 'test', lease_until = now() + interval '1 minute' WHERE id = $1`, [id]);
      expect(await isActive(short, id)).toBe(true);
      await db.query(`UPDATE sessions SET lease_until = now() - interval '1 second' WHERE id = $1`, [id]); // a lapsed lease runs nothing
      expect(await isActive(short, id)).toBe(false);
      await db.query(`UPDATE sessions SET lease_owner = NULL, lease_until = NULL WHERE id = $1`, [id]);
      const calls = new ToolCallStore(db);
      await calls.insertBatch(id, randomUUID(), [
        {
          callId: 'w1',
          position: 0,
          agent: 'coder',
          toolName: 'write_file',
          arguments: {},
          requiresApproval: true,
          approvalReason: null,
          status: 'queued',
        },
      ]);
      await calls.markSent(id, 'w1', 60_000);
      expect(await isActive(short, id)).toBe(true);
      await calls.transition(id, 'w1', ['pending_approval'], 'rejected', { decision: 'reject', completed: true });
      expect(await isActive(short, id)).toBe(false);
    });

    it('list() with activeOnly leaves out exactly the inactive sessions, and reports is_active by the same rule', async () => {
      const owner = `user-${randomUUID()}`;
      const [fresh, idle] = [`fresh-${randomUUID()}`, `idle-${randomUUID()}`];
      await store.create(fresh, owner);
      await store.create(idle, owner);
      await ago(idle, 7200);
      const active = await store.list({ limit: 10, offset: 0, activeOnly: true, caller: owner });
      expect(active).toMatchObject({ total: 1, sessions: [{ id: fresh, is_active: true }] });
      const all = await store.list({ limit: 10, offset: 0, activeOnly: false, caller: owner });
      expect(all.sessions.map((s) => [s.id, s.is_active])).toEqual([
        [fresh, true],
        [idle, false],
      ]);
      // the summaries the list makes in SQL are the ones summaryOf makes of a session row, field for field
      // (the time as ISO text, to the millisecond, in UTC: as Date.toISOString prints it)
      for (const [i, id] of [fresh, idle].entries()) {
        await db.query(`UPDATE sessions SET last_activity = '2026-03-04 05:06:07.891234+02' WHERE id = $1 AND $2::int = 0`, [id, i]);
        const row = (await store.find(id))!;
        const listed = (await store.list({ limit: 10, offset: 0, activeOnly: false, caller: owner })).sessions.find((x) => x.id === id);
        expect(listed).toEqual(summaryOf(row));
      }
      expect(all.sessions[0]!.last_activity).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
      expect(
        (await store.list({ limit: 10, offset: 0, activeOnly: false, caller: owner })).sessions.find((x) => x.id === fresh)!.last_activity,
      ).toBe('2026-03-04T03:06:07.891Z');
    });

    it('refuses a timeout that is not a positive number', () => {
      expect(() => new SessionStore(db, { idleTimeoutSeconds: 0 })).toThrow(/positive/);
      expect(() => new SessionStore(db, { idleTimeoutSeconds: Number.NaN })).toThrow(/positive/);
    });
  });

  it('agentSwitches() lists the switches oldest first, as the agent context store does', async () => {
    const id = await newSession();
    const contexts = new AgentContextStore(db);
    await contexts.switchAgent(id, { to: 'ask', reason: 'routing', confidence: 'high', source: 'routing' });
    await contexts.switchAgent(id, { to: 'coder', reason: 'user', confidence: null, source: 'user' });
    expect(await store.agentSwitches(id)).toEqual(await contexts.history(id));
    expect((await store.agentSwitches(id)).map((s) => [s.from_agent, s.to_agent])).toEqual([
      ['orchestrator', 'ask'],
      ['ask', 'coder'],
    ]);
  });
});
