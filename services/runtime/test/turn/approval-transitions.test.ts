/**
 * The tool-call / approval state machine as a table: each row puts a call in a state (a row of
 * `tool_calls`, inserted where the turn engine would), sends the message that answers it through
 * POST /agent/message/stream, and names the answer and the state the call is left in. Legal
 * moves: pending_approval → approved (approve, edit) / rejected (reject, a failed tool_result) /
 * completed (a tool_result) / rejected with decision `expired` (past its deadline); approved and
 * awaiting_result → completed / failed; any open call → superseded by a new user message.
 * Everything else is refused with a 4xx and changes nothing. The store's own conditional moves
 * (conversation.ts relies on them) get a table of their own.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { listen, type Database, type Service } from '@codelab/service-kit';
import { silentLogger, TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';
import { buildApp as buildLlmProxy } from '@codelab/llm-proxy/app';
import { readLlmProxyConfig } from '@codelab/llm-proxy/config';
import { ToolCallStore, type ToolCallStatus } from '../../src/store/tool-calls.ts';
import { createSession, newUser, openTestDb, startRuntime } from '../routes/fixture.ts';

type Frame = Record<string, unknown>;

const ARGS = { path: 'a.py', content: 'print(1)' };
const EDITED = { path: 'b.py', content: 'print(2)' };

interface CallState {
  status: ToolCallStatus;
  decision?: string;
  /** The approval's deadline has passed. */
  expired?: boolean;
}

interface Row {
  from: CallState;
  message: Record<string, unknown>;
  /** The HTTP status, and for a refusal its error code. */
  answer: { status: 200; final: 'tool_call' | 'assistant_message' } | { status: 404 | 409; code: string };
  to: { status: ToolCallStatus; decision: string | null; final_arguments?: Record<string, unknown> | null };
}

const approve = { type: 'hitl_decision', decision: 'approve' };
const edit = { type: 'hitl_decision', decision: 'edit', modified_arguments: EDITED };
const reject = { type: 'hitl_decision', decision: 'reject', feedback: 'not this file' };
const resultOk = { type: 'tool_result', result: { written: true } };
const resultError = { type: 'tool_result', error: 'disk full' };
const newMessage = { type: 'user_message', content: 'never mind, do something else' };

const from = (status: ToolCallStatus, decision?: string, expired = false): CallState => ({
  status,
  ...(decision ? { decision } : {}),
  ...(expired ? { expired } : {}),
});
const ok = (final: 'tool_call' | 'assistant_message'): Row['answer'] => ({ status: 200, final });
const refused = (status: 404 | 409, code: string): Row['answer'] => ({ status, code });
const to = (status: ToolCallStatus, decision: string | null = null, finalArguments?: Record<string, unknown>): Row['to'] => ({
  status,
  decision,
  ...(finalArguments ? { final_arguments: finalArguments } : {}),
});
const NO_APPROVAL = refused(404, 'RT_ERR_NO_PENDING_APPROVAL');
const CLOSED = refused(409, 'RT_ERR_TOOL_CALL_CLOSED');
const EXPIRED = refused(409, 'RT_ERR_APPROVAL_EXPIRED');

const TABLE: Row[] = (
  [
    // pending_approval: a human decides, or the IDE answers for it
    [from('pending_approval'), approve, ok('tool_call'), to('approved', 'approve', ARGS)],
    [from('pending_approval'), edit, ok('tool_call'), to('approved', 'edit', EDITED)],
    [from('pending_approval'), reject, ok('assistant_message'), to('rejected', 'reject')],
    [from('pending_approval'), resultOk, ok('assistant_message'), to('completed', 'approve')],
    [from('pending_approval'), resultError, ok('assistant_message'), to('rejected', 'reject')],
    [from('pending_approval'), newMessage, ok('assistant_message'), to('superseded')],
    // past its deadline, whatever the answer: rejected as expired
    [from('pending_approval', undefined, true), approve, EXPIRED, to('rejected', 'expired')],
    [from('pending_approval', undefined, true), edit, EXPIRED, to('rejected', 'expired')],
    [from('pending_approval', undefined, true), reject, EXPIRED, to('rejected', 'expired')],
    [from('pending_approval', undefined, true), resultOk, EXPIRED, to('rejected', 'expired')],
    // approved: the IDE runs it and answers
    [from('approved', 'approve'), resultOk, ok('assistant_message'), to('completed', 'approve')],
    [from('approved', 'approve'), resultError, ok('assistant_message'), to('failed', 'approve')],
    [from('approved', 'approve'), newMessage, ok('assistant_message'), to('superseded', 'approve')],
    // awaiting_result: no approval needed
    [from('awaiting_result'), resultOk, ok('assistant_message'), to('completed')],
    [from('awaiting_result'), resultError, ok('assistant_message'), to('failed')],
    // illegal moves: refused, nothing changes
    [from('awaiting_result'), approve, NO_APPROVAL, to('awaiting_result')],
    [from('approved', 'approve'), approve, NO_APPROVAL, to('approved', 'approve')],
    [from('approved', 'approve'), reject, NO_APPROVAL, to('approved', 'approve')],
    [from('rejected', 'reject'), approve, NO_APPROVAL, to('rejected', 'reject')],
    [from('rejected', 'reject'), resultOk, CLOSED, to('rejected', 'reject')],
    [from('rejected', 'expired'), approve, EXPIRED, to('rejected', 'expired')],
    [from('rejected', 'expired'), resultOk, EXPIRED, to('rejected', 'expired')],
    [from('completed', 'approve'), resultOk, CLOSED, to('completed', 'approve')],
    [from('completed', 'approve'), approve, NO_APPROVAL, to('completed', 'approve')],
    [from('failed'), resultOk, CLOSED, to('failed')],
    [from('superseded'), resultOk, CLOSED, to('superseded')],
    [from('superseded'), approve, NO_APPROVAL, to('superseded')],
    [from('queued'), approve, NO_APPROVAL, to('queued')],
    [from('queued'), resultOk, CLOSED, to('queued')],
    [from('forbidden'), resultOk, CLOSED, to('forbidden')],
  ] as const satisfies readonly (readonly [CallState, Record<string, unknown>, Row['answer'], Row['to']])[]
).map(([f, message, answer, t]) => ({ from: f, message, answer, to: t }));

const label = (r: Row): string => {
  const from = `${r.from.status}${r.from.decision ? `(${r.from.decision})` : ''}${r.from.expired ? ' past its deadline' : ''}`;
  const msg =
    r.message.type === 'hitl_decision'
      ? `hitl ${String(r.message.decision)}`
      : r.message.type === 'tool_result'
        ? `tool_result ${r.message.error ? 'error' : 'ok'}`
        : String(r.message.type);
  const answer = r.answer.status === 200 ? `200, final ${r.answer.final}` : `${r.answer.status} ${r.answer.code}`;
  return `${from} + ${msg} → ${answer}, ${r.to.status}${r.to.decision ? `(${r.to.decision})` : ''}`;
};

describe('approval state transitions', () => {
  let llm: Service;
  let runtime: Service;
  let db: Database;
  beforeAll(async () => {
    const llmConfig = readLlmProxyConfig({
      LLM_PROXY__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
      LLM_PROXY__MOCK_TTFT_MS: '0',
      LLM_PROXY__MOCK_TOKEN_DELAY_MS: '0',
    });
    llm = await buildLlmProxy(llmConfig, { logger: silentLogger() });
    const llmUrl = await listen(llm, { host: '127.0.0.1', port: 0 });
    runtime = await startRuntime(inject('databaseUrl'), { AGENT_RUNTIME__LLM_PROXY_URL: llmUrl, AGENT_RUNTIME__MULTI_AGENT_MODE: 'false' });
    db = await openTestDb(inject('databaseUrl'));
  });
  afterAll(async () => {
    await db?.close();
    await runtime?.app.close();
    await llm?.app.close();
  });

  /** A session with one call in `state`, sent to the IDE a minute ago. */
  const callIn = async (state: CallState): Promise<{ sessionId: string; callId: string; headers: Record<string, string> }> => {
    const user = newUser();
    const sessionId = await createSession(runtime, user.headers, 'hitl');
    const callId = `call_${randomUUID().slice(0, 8)}`;
    await db.query(
      `INSERT INTO tool_calls (session_id, call_id, batch, position, agent, tool_name, arguments, requires_approval, approval_reason, status, decision,
                               sent_at, expires_at)
       VALUES ($1, $2, $3, 0, 'universal', 'write_file', $4, $5, 'File modification requires user approval', $6, $7, now() - interval '1 minute',
               CASE WHEN $8 THEN now() - interval '1 second' ELSE now() + interval '1 hour' END)`,
      [
        sessionId,
        callId,
        randomUUID(),
        JSON.stringify(ARGS),
        state.status !== 'awaiting_result',
        state.status,
        state.decision ?? null,
        state.expired === true,
      ],
    );
    if (state.status === 'queued' || state.status === 'awaiting_result')
      await db.query('UPDATE tool_calls SET expires_at = NULL WHERE call_id = $1', [callId]);
    return { sessionId, callId, headers: user.headers };
  };

  const stateOf = async (sessionId: string, callId: string): Promise<Row['to']> =>
    (
      await db.query<Row['to']>('SELECT status, decision, final_arguments FROM tool_calls WHERE session_id = $1 AND call_id = $2', [
        sessionId,
        callId,
      ])
    ).rows[0]!;

  it.each(TABLE.map((r) => [label(r), r] as const))('%s', async (_, row) => {
    const { sessionId, callId, headers } = await callIn(row.from);
    const message = row.message.type === 'user_message' ? row.message : { ...row.message, call_id: callId };
    const res = await runtime.app.inject({
      method: 'POST',
      url: '/agent/message/stream',
      headers: { ...headers, 'content-type': 'application/json' },
      payload: { session_id: sessionId, message },
    });
    expect(res.statusCode).toBe(row.answer.status);
    if (row.answer.status === 200) {
      const frames = res.body
        .split('\n')
        .filter((l) => l.startsWith('data: '))
        .map((l) => JSON.parse(l.slice(6)) as Frame);
      const finals = frames.filter((f) => f.is_final === true);
      expect(finals).toHaveLength(1);
      expect(finals[0]!.type).toBe(row.answer.final);
      if (row.answer.final === 'tool_call')
        expect(finals[0]).toMatchObject({ call_id: callId, requires_approval: false, arguments: row.to.final_arguments });
    } else {
      expect(res.json()).toMatchObject({ error: { code: row.answer.code } });
    }
    const to = await stateOf(sessionId, callId);
    expect({ status: to.status, decision: to.decision }).toEqual({ status: row.to.status, decision: row.to.decision });
    if (row.to.final_arguments !== undefined) expect(to.final_arguments).toEqual(row.to.final_arguments);
  });

  it('rejects an approval past its deadline as expired with no answer at all (the expiry sweep)', async () => {
    const { sessionId, callId } = await callIn({ status: 'pending_approval', expired: true });
    await expect
      .poll(() => stateOf(sessionId, callId), { timeout: 60_000, interval: 200 })
      .toMatchObject({ status: 'rejected', decision: 'expired' });
    const { rows } = await db.query<{ content: string }>(
      `SELECT content FROM messages WHERE session_id = $1 AND role = 'tool' AND tool_call_id = $2`,
      [sessionId, callId],
    );
    expect(rows.map((r) => JSON.parse(r.content) as unknown)).toEqual([expect.objectContaining({ status: 'rejected', reason: 'expired' })]);
  });

  describe('the store primitives the machine is built on', () => {
    interface StoreRow {
      name: string;
      from: CallState & { requiresApproval?: boolean };
      act: (store: ToolCallStore, sessionId: string, callId: string) => Promise<unknown>;
      moved: boolean;
      to: ToolCallStatus;
    }
    type Act = StoreRow['act'];
    const send: Act = (s, id, c) => s.markSent(id, c, 60_000);
    const decide: Act = (s, id, c) => s.transition(id, c, ['pending_approval'], 'approved', { decision: 'approve' });
    const expire: Act = (s, id) => s.expire(id).then((r) => r[0]);
    const STORE: StoreRow[] = (
      [
        ['markSent: queued needing approval → pending_approval', { status: 'queued' }, send, true, 'pending_approval'],
        [
          'markSent: queued without approval → awaiting_result',
          { status: 'queued', requiresApproval: false },
          send,
          true,
          'awaiting_result',
        ],
        ['markSent: only a queued call is sent', { status: 'pending_approval' }, send, false, 'pending_approval'],
        ['transition: from a listed state', { status: 'pending_approval' }, decide, true, 'approved'],
        ['transition: not from another state', { status: 'rejected' }, decide, false, 'rejected'],
        [
          'transition: no decision past the deadline, even from a listed state',
          { status: 'pending_approval', expired: true },
          decide,
          false,
          'pending_approval',
        ],
        [
          'expire: an approval past its deadline → rejected (expired)',
          { status: 'pending_approval', expired: true },
          expire,
          true,
          'rejected',
        ],
        ['expire: not before its deadline', { status: 'pending_approval' }, expire, false, 'pending_approval'],
      ] as const satisfies readonly (readonly [string, StoreRow['from'], Act, boolean, ToolCallStatus])[]
    ).map(([name, f, act, moved, t]) => ({ name, from: f, act, moved, to: t }));

    it.each(STORE.map((r) => [r.name, r] as const))('%s', async (_, row) => {
      const store = new ToolCallStore(db);
      const { sessionId, callId } = await callIn(row.from);
      if (row.from.requiresApproval === false)
        await db.query('UPDATE tool_calls SET requires_approval = false WHERE call_id = $1', [callId]);
      const moved = await row.act(store, sessionId, callId);
      expect(moved !== undefined).toBe(row.moved);
      expect((await stateOf(sessionId, callId)).status).toBe(row.to);
    });
  });
});
