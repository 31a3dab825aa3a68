/**
 * The statement that takes a user message's turn lease also reads the session's history for the
 * turn's first LLM call (session-lease.ts `historyAfterTake`): it must be the history a separate
 * read gives, the stored message last, and it must not be used when a turn ended while the
 * statement waited for the session row (its read then predates that turn's writes).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ServiceMetrics, type Database, type Service } from '@codelab/service-kit';
import { createRuntimeMetrics } from '../../src/metrics.ts';
import { SessionStore, type StoredMessage } from '../../src/store/sessions.ts';
import { ToolCallStore } from '../../src/store/tool-calls.ts';
import { HistoryCache } from '../../src/turn/history-cache.ts';
import { historyAfterTake, SessionLeases } from '../../src/turn/session-lease.ts';
import { TurnContext } from '../../src/turn/turn-context.ts';
import { createSession, newUser, openTestDb, queuedWrite, startRuntime } from '../routes/fixture.ts';

describe('historyAfterTake', () => {
  const stored = { id: 'm3', content: 'third', createdAt: new Date('2026-01-01T00:00:03Z') };
  /** A row as the lease statement answers it: the lease's columns, and one message's (or none). */
  const row = (over: Record<string, unknown>) => ({
    owner: 'rt-1:abc:turn:7',
    current_agent: 'ask',
    frame_seq: '7',
    prev_owner: null,
    closed_interrupted: false,
    open_tool_calls: '0',
    stored: true,
    token: '1234',
    message_count: 3,
    message_created_at: stored.createdAt,
    snapshot_frame_seq: '7',
    ...over,
  });
  const message = (seq: number, role: 'user' | 'assistant', content: string) => ({
    id: `m${seq}`,
    seq,
    role,
    content,
    name: null,
    tool_call_id: null,
    tool_calls: null,
    token_count: null,
    created_at: new Date(`2026-01-01T00:00:0${seq}Z`),
    edits: null,
  });

  it('is what the statement read, with the message it stored last', () => {
    const history = historyAfterTake([row(message(1, 'user', 'first')), row(message(2, 'assistant', 'answer'))], stored)?.history;
    expect(history?.map((m) => [m.seq, m.role, m.content])).toEqual([
      [1, 'user', 'first'],
      [2, 'assistant', 'answer'],
      [3, 'user', 'third'],
    ]);
    // the messages only: none of the lease's columns rides along
    for (const m of history!) expect(Object.keys(m).sort()).toEqual(Object.keys(message(1, 'user', '')).sort());
  });

  it('is the stored message alone for a session without history (one row with no message)', () => {
    expect(historyAfterTake([row({ message_count: 1, id: null })], stored)?.history).toEqual([
      {
        id: 'm3',
        seq: 1,
        role: 'user',
        content: 'third',
        name: null,
        tool_call_id: null,
        tool_calls: null,
        token_count: null,
        created_at: stored.createdAt,
        edits: null,
      },
    ]);
  });

  it('is not given when the read may be stale', () => {
    const two = (over: Record<string, unknown>) => [
      row({ ...message(1, 'user', 'first'), ...over }),
      row({ ...message(2, 'assistant', 'a'), ...over }),
    ];
    expect(historyAfterTake(two({ snapshot_frame_seq: '5' }), stored)).toBeUndefined(); // a turn ended meanwhile
    expect(historyAfterTake(two({ prev_owner: 'rt-1:abc:turn:5' }), stored)).toBeUndefined(); // a lapsed turn taken over
    expect(historyAfterTake(two({ message_count: 4 }), stored)).toBeUndefined(); // a message came meanwhile
    expect(historyAfterTake([], stored)).toBeUndefined();
  });

  it('continues the messages kept from the last turn: the last kept one read again (the same), then up to the stored one', () => {
    const kept = [message(1, 'user', 'first')];
    const read = historyAfterTake([row(message(1, 'user', 'first')), row(message(2, 'assistant', 'answer'))], stored, kept);
    expect(read?.history.map((m) => m.content)).toEqual(['first', 'answer', 'third']);
    expect(read?.rows[0]).toBe(kept[0]); // the kept row itself, not the one read again
    expect(read?.read.map((m) => m.seq)).toEqual([2, 3]);
    // nothing stored after the kept ones: the stored message follows them
    expect(historyAfterTake([row({ ...message(1, 'user', 'first'), message_count: 2 })], stored, kept)?.history.map((m) => m.seq)).toEqual([
      1, 2,
    ]);
    // a gap after the kept ones, a missing message, or no kept message read: not used
    expect(historyAfterTake([row(message(1, 'user', 'first')), row(message(3, 'assistant', 'x'))], stored, kept)).toBeUndefined();
    expect(historyAfterTake([row(message(1, 'user', 'first'))], stored, kept)).toBeUndefined();
    expect(historyAfterTake([row(message(2, 'assistant', 'a'))], stored, kept)).toBeUndefined();
    // the database's message 1 is another one than the kept one (a restored database, say): not used
    expect(
      historyAfterTake([row({ ...message(1, 'user', 'first'), id: 'other' }), row(message(2, 'assistant', 'a'))], stored, kept),
    ).toBeUndefined();
  });

  it("applies the session's edits (read every turn) to kept rows as well", () => {
    const call = { id: 'c1', type: 'function', function: { name: 'write_file', arguments: '{"path":"a"}' } };
    const kept = [{ ...message(1, 'assistant', ''), tool_calls: [call] }];
    const edits = [{ call_id: 'c1', arguments: { path: 'a' }, final_arguments: { path: 'b' } }];
    const read = historyAfterTake([row({ ...kept[0]!, edits }), row({ ...message(2, 'assistant', 'done'), edits })], stored, kept);
    expect(read?.history[0]?.tool_calls).toEqual([{ ...call, function: { ...call.function, arguments: '{"path":"b"}' } }]);
    expect(read?.history[0]?.original_tool_calls).toEqual([call]);
    expect(read?.rows[0]?.tool_calls).toEqual([call]); // what is kept stays as stored
  });
});

describe('the history read with a turn lease, on PostgreSQL', () => {
  let runtime: Service;
  let db: Database;
  let other: Database;
  let store: SessionStore;
  let leases: SessionLeases;
  beforeAll(async () => {
    runtime = await startRuntime(inject('databaseUrl'));
    db = await openTestDb(inject('databaseUrl'));
    other = await openTestDb(inject('databaseUrl'));
    store = new SessionStore(db);
    leases = new SessionLeases(db, { ttlMs: 60_000, metrics: createRuntimeMetrics(new ServiceMetrics('lease-history-test')) });
  });
  afterAll(async () => {
    await other?.close();
    await db?.close();
    await runtime?.app.close();
  });

  const sessionWithHistory = async (): Promise<{ sessionId: string; sub: string }> => {
    const user = newUser();
    const sessionId = await createSession(runtime, user.headers, 'lh');
    await store.append(sessionId, { role: 'user', content: 'first question' });
    await store.append(sessionId, { role: 'assistant', content: 'first answer', token_count: 2 });
    return { sessionId, sub: user.sub };
  };

  it('equals the history read afterwards, the stored message last', async () => {
    const { sessionId, sub } = await sessionWithHistory();
    const lease = await leases.tryAcquire(sessionId, sub, { turn: true, userMessage: 'second question' });
    expect(lease?.session.message_stored).toBe(true);
    expect(lease!.session.history).toEqual(await store.messages(sessionId));
    expect(lease!.session.history!.map((m) => m.content)).toEqual(['first question', 'first answer', 'second question']);
    await lease!.release();
  });

  /** Leases of another runtime instance, which keeps histories between turns; and the rows its lease statements read. */
  const keeping = () => {
    const cache = new HistoryCache(1 << 20);
    const metrics = createRuntimeMetrics(new ServiceMetrics('lease-history-cache-test'));
    const read: number[] = [];
    const counting: Database = Object.create(db, {
      query: {
        value: async (...args: Parameters<Database['query']>) => {
          const r = await db.query(...args);
          if (String(args[0]).includes('history AS')) read.push(r.rows.filter((row) => (row as { id?: unknown }).id != null).length);
          return r;
        },
      },
    });
    const reads = async (kind: string) => (await metrics.historyReads.get()).values.find((v) => v.labels.read === kind)?.value ?? 0;
    return { cache, read, reads, leases: new SessionLeases(counting, { ttlMs: 60_000, metrics, historyCache: cache }) };
  };

  it("reads only the messages stored since the last turn on this instance, another instance's among them", async () => {
    const { sessionId, sub } = await sessionWithHistory();
    const here = keeping();
    const first = await here.leases.tryAcquire(sessionId, sub, { turn: true, userMessage: 'second question' });
    const firstHistory = first!.session.history!;
    await store.append(sessionId, { role: 'assistant', content: 'second answer' });
    await first!.release();
    // a turn on another instance (its own leases) in between
    const elsewhere = await leases.tryAcquire(sessionId, sub, { turn: true, userMessage: 'third question' });
    await store.append(sessionId, { role: 'assistant', content: 'third answer' });
    await elsewhere!.release();

    const second = await here.leases.tryAcquire(sessionId, sub, { turn: true, userMessage: 'fourth question' });
    expect(second!.session.history).toEqual(await store.messages(sessionId));
    expect(second!.session.history!.map((m) => m.content)).toEqual([
      'first question',
      'first answer',
      'second question',
      'second answer',
      'third question',
      'third answer',
      'fourth question',
    ]);
    expect(second!.session.history![0]).toBe(firstHistory[0]); // kept, not read again
    expect(here.read).toEqual([2, 4]); // the first turn read the two messages before it, the second its last kept one and the three since
    expect([await here.reads('whole'), await here.reads('after_kept')]).toEqual([1, 1]);
    await second!.release();
  });

  it('applies an edit made after the history was kept', async () => {
    const { sessionId, sub } = await sessionWithHistory();
    const here = keeping();
    const proposed = { path: 'a.txt', content: 'x' };
    const call = { id: 'e1', type: 'function', function: { name: 'write_file', arguments: JSON.stringify(proposed) } };
    await store.append(sessionId, { role: 'user', content: 'write it' });
    await store.append(sessionId, { role: 'assistant', content: '', tool_calls: [call] });
    const first = await here.leases.tryAcquire(sessionId, sub, { turn: true, userMessage: 'go on' });
    await first!.release();
    // the call is edited and answered (as a turn does it) after its message was kept
    const calls = new ToolCallStore(db);
    await calls.insertBatch(sessionId, randomUUID(), [queuedWrite('e1', proposed)]);
    await calls.markSent(sessionId, 'e1', 60_000);
    await calls.transition(sessionId, 'e1', ['pending_approval'], 'approved', {
      decision: 'edit',
      finalArguments: { path: 'b.txt', content: 'x' },
    });
    await calls.transition(sessionId, 'e1', ['approved'], 'completed', { completed: true });
    await store.append(sessionId, { role: 'tool', content: 'ok', tool_call_id: 'e1', name: 'write_file' });
    const second = await here.leases.tryAcquire(sessionId, sub, { turn: true, userMessage: 'thanks' });
    const whole = await store.messages(sessionId);
    // (a whole read carries the session's edits on every row as well, the lease's rows not: they may be kept)
    const fields = (m: StoredMessage) => ({ ...m, edits: undefined });
    expect(second!.session.history!.map(fields)).toEqual(whole.map(fields));
    expect(JSON.parse((whole[3]!.tool_calls![0] as typeof call).function.arguments)).toEqual({ path: 'b.txt', content: 'x' });
    expect(await here.reads('after_kept')).toBe(1);
    await second!.release();
  });

  it("reads the whole history again when the last kept message is not the database's any more (a restored database)", async () => {
    const { sessionId, sub } = await sessionWithHistory();
    const here = keeping();
    const first = await here.leases.tryAcquire(sessionId, sub, { turn: true, userMessage: 'second question' });
    await first!.release();
    // message 3 (the last kept) replaced by another one under the runtime's feet
    await db.query(`UPDATE messages SET id = gen_random_uuid(), content = 'restored question' WHERE session_id = $1 AND seq = 3`, [
      sessionId,
    ]);
    const second = await here.leases.tryAcquire(sessionId, sub, { turn: true, userMessage: 'third question' });
    expect(second!.session.history).toBeUndefined(); // the turn's first LLM call reads it whole
    expect(await here.reads('not_current')).toBe(1);
    expect(here.cache.get(sessionId)).toEqual([]);
    expect((await store.messages(sessionId)).map((m) => m.content)).toEqual([
      'first question',
      'first answer',
      'restored question',
      'third question',
    ]);
    await second!.release();
    // the turn after reads it whole, and keeps it again
    const third = await here.leases.tryAcquire(sessionId, sub, { turn: true, userMessage: 'fourth question' });
    expect(third!.session.history!.map((m) => m.content)).toEqual([
      'first question',
      'first answer',
      'restored question',
      'third question',
      'fourth question',
    ]);
    expect(here.cache.get(sessionId)).toHaveLength(5);
    await third!.release();
  });

  it("is the turn's once it starts: the lease keeps none for the rest of the turn", async () => {
    // (the lease lives as long as the turn; a history it kept would outlive the collector's young generation)
    const { sessionId, sub } = await sessionWithHistory();
    const lease = await leases.tryAcquire(sessionId, sub, { turn: true, userMessage: 'second question' });
    const read = lease!.session.history;
    const noop = () => undefined;
    const t = new TurnContext({} as never, sessionId, 'c-1', 'ask', 0, new AbortController().signal, {} as never, noop as never, lease);
    expect(lease!.session.history).toBeUndefined();
    expect(t.takeHistory()).toBe(read);
    expect(t.takeHistory()).toBeUndefined(); // the turn's later LLM calls read it again
    await lease!.release();
  });

  // two transactions at once: a PostgreSQL server (the embedded engine runs every connection in one session)
  it.skipIf(inject('databaseKind') !== 'server').each([
    ['stored its answer', true],
    ['sent a tool call (no message, a new frame number)', false],
  ])('is left out when a turn that %s ended while the statement waited for the session row', async (_what, answered) => {
    const { sessionId, sub } = await sessionWithHistory();
    // another instance's turn holds the row: it ends (moves the frame number, maybe stores its
    // answer) and commits only once the lease statement below waits for the row
    const holder = await other.pool.connect();
    try {
      const { rows } = await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      await holder.query('BEGIN');
      await holder.query(
        `UPDATE sessions SET frame_seq = frame_seq + 3, message_count = message_count + ${answered ? 1 : 0} WHERE id = $1`,
        [sessionId],
      );
      if (answered)
        await holder.query(
          `INSERT INTO messages (id, session_id, seq, role, content) VALUES (gen_random_uuid(), $1, 3, 'assistant', 'late answer')`,
          [sessionId],
        );
      const here = keeping();
      const taking = here.leases.tryAcquire(sessionId, sub, { turn: true, userMessage: 'second question' });
      const waiting = async (): Promise<number> =>
        (
          await db.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid))', [
            rows[0]!.pid,
          ])
        ).rows[0]!.n;
      await expect.poll(waiting, { timeout: 30_000 }).toBe(1);
      await holder.query('COMMIT');
      const lease = await taking;
      expect(lease?.session.message_stored).toBe(true);
      expect(lease!.session.history).toBeUndefined(); // the turn's first LLM call reads it again
      expect(await here.reads('not_current')).toBe(1);
      expect(here.cache.get(sessionId)).toEqual([]); // nothing kept of it for the next turn either
      expect((await store.messages(sessionId)).map((m) => m.content)).toEqual(
        answered
          ? ['first question', 'first answer', 'late answer', 'second question']
          : ['first question', 'first answer', 'second question'],
      );
      await lease!.release();
    } finally {
      holder.release();
    }
  });
});
