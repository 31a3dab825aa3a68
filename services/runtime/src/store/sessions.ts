/**
 * Sessions and messages in PostgreSQL. Appends are single statements: the session row's counter is
 * bumped and the message inserted with that number, so history is never rewritten.
 *
 * Reading history applies what happened to tool calls since their answer was stored: a call a
 * person edited before approving it reads with the arguments it was approved with (the LLM and
 * `/history` see what actually ran), the proposal is kept beside it (`original_tool_calls`), and
 * its result tells the LLM that a person edited it.
 *
 * A session is active while it is in use: a message within the idle timeout
 * (AGENT_RUNTIME__SESSION_IDLE_TIMEOUT), a turn running (its lease held), or a tool call still
 * waiting for the IDE or a human. Computed when read, so nothing has to sweep.
 */
import { randomUUID } from 'node:crypto';
import type { Database, Queryable } from '@codelab/service-kit';
import type { Caller, ChatMessage, HistoryMessage, SessionSummary, ToolCall } from '@codelab/protocol';
import { AgentContextStore, type AgentSwitch } from './agent-context.ts';
import type { TakenRows } from './event-writer.ts';
import { OPEN_STATUSES } from './tool-calls.ts';

export interface SessionRow {
  id: string;
  owner_sub: string | null;
  title: string | null;
  current_agent: string;
  message_count: number;
  is_active: boolean;
  created_at: Date;
  last_activity: Date;
}

export interface NewMessage {
  role: 'user' | 'assistant' | 'system' | 'tool';
  content: string | null;
  name?: string;
  tool_call_id?: string;
  tool_calls?: unknown[];
  token_count?: number;
  metadata?: Record<string, unknown>;
}

export interface StoredMessage extends NewMessage {
  id: string;
  seq: number;
  created_at: Date;
  /**
   * On an assistant message with a tool call a person edited before approving it: the calls as the
   * LLM proposed them (`tool_calls` then carries the arguments each call was approved with).
   */
  original_tool_calls?: unknown[];
  /** On the result of a call a person edited: the arguments the LLM had proposed. */
  edited_from?: Record<string, unknown>;
}

/** Default of AGENT_RUNTIME__SESSION_IDLE_TIMEOUT (seconds without a message before a session is inactive). */
export const DEFAULT_SESSION_IDLE_TIMEOUT = 3600;

const BASE_COLUMNS = 'id, owner_sub, title, current_agent, message_count, created_at, last_activity';
/** A summary's columns (`SessionSummary`, but `is_active`), its time as `Date.toISOString` prints it. */
const SUMMARY_COLUMNS = `id, title, current_agent, message_count,
  to_char(last_activity AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS last_activity`;
const SESSION_COLUMNS = `${BASE_COLUMNS}, is_active`;
const OPEN_LIST = OPEN_STATUSES.map((s) => `'${s}'`).join(', ');

/** The session (a row of `sessions`) is active: see the module comment. */
function activeRule(idleSeconds: number): string {
  return `(sessions.is_active AND (
    sessions.last_activity > now() - ${idleSeconds} * interval '1 second'
    OR (sessions.lease_owner IS NOT NULL AND sessions.lease_until > now())
    OR EXISTS (SELECT 1 FROM tool_calls tc WHERE tc.session_id = sessions.id AND tc.status IN (${OPEN_LIST}))))`;
}

export function summaryOf(row: SessionRow): SessionSummary {
  return {
    id: row.id,
    title: row.title,
    message_count: row.message_count,
    last_activity: row.last_activity.toISOString(),
    is_active: row.is_active,
    current_agent: row.current_agent,
  };
}

/**
 * Whose sessions a call may see (the protocol's `Caller`): a user id (the JWT `sub` the gateway
 * forwards) sees only the sessions it owns; `undefined` (authentication off, development) sees
 * every session.
 */
export type { Caller };

export function visibleTo(row: SessionRow, caller: Caller): boolean {
  return caller === undefined || row.owner_sub === caller;
}

/**
 * A turn's session lease as a single write can carry it (turn/session-lease.ts): the write's own
 * UPDATE of the session row holds the condition, so the check, the row lock a takeover waits for
 * and the write are one statement and one commit instead of a transaction around `Lease.fence`.
 */
export interface WriteFence {
  /** Where such writes go: the database itself, not the turn's fenced view of it. */
  readonly db: Queryable;
  /** The row is still this lease's: `lease_owner = owners[0] OR lease_owner LIKE owners[1]`. */
  readonly owners: readonly [string, string];
  /** Throws when the lease is already known to be lost. */
  check(): void;
  /** The row was someone else's: marks the lease lost and throws. */
  refused(): never;
}

/**
 * A turn's last commit (`append` with it): the lease is released with `frameSeq` (the number of the
 * turn's final frame) and `finalFrame` (that frame's JSON, kept in the row for whoever finds the
 * frame log without it), and the bookkeeping rows `rows` took along are inserted in the same commit.
 */
export interface TurnEnd {
  frameSeq: number;
  finalFrame: string;
  rows?: TakenRows | undefined;
}

export class SessionStore {
  private readonly columns: string;
  private readonly active: string;
  private readonly contexts: AgentContextStore;

  private readonly db: Database;
  private readonly fence: WriteFence | undefined;

  /** `fence`: a turn's stores, on its fenced database (`db`), append a message in one fenced statement. */
  constructor(db: Database, opts: { idleTimeoutSeconds?: number; fence?: WriteFence } = {}) {
    this.db = db;
    this.fence = opts.fence;
    const idle = opts.idleTimeoutSeconds ?? DEFAULT_SESSION_IDLE_TIMEOUT;
    if (!Number.isFinite(idle) || idle <= 0) throw new Error(`idleTimeoutSeconds must be a positive number of seconds, got ${idle}`);
    this.active = activeRule(idle);
    this.columns = `${BASE_COLUMNS}, ${this.active} AS is_active`;
    this.contexts = new AgentContextStore(db);
  }

  /** Creates a session; returns undefined when the id is taken (by anyone). */
  async create(id: string, ownerSub: string | null): Promise<SessionRow | undefined> {
    const { rows } = await this.db.query<SessionRow>(
      `INSERT INTO sessions (id, owner_sub) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING RETURNING ${SESSION_COLUMNS}`,
      [id, ownerSub],
    );
    return rows[0];
  }

  /** The session, whoever owns it (callers check `visibleTo`). */
  async find(id: string): Promise<SessionRow | undefined> {
    const { rows } = await this.db.query<SessionRow>(`SELECT ${this.columns} FROM sessions WHERE id = $1 AND deleted_at IS NULL`, [id]);
    return rows[0];
  }

  /** The session if the caller may see it. */
  async get(id: string, caller: Caller): Promise<SessionRow | undefined> {
    const row = await this.find(id);
    return row && visibleTo(row, caller) ? row : undefined;
  }

  /**
   * Upstream creates a session lazily on first use of its id; the caller becomes its owner.
   * Undefined when the id belongs to someone else.
   */
  async getOrCreate(id: string, caller: Caller): Promise<SessionRow | undefined> {
    const existing = await this.find(id); // the common case: one read, no write
    if (existing) return visibleTo(existing, caller) ? existing : undefined;
    const created = await this.create(id, caller ?? null);
    if (created) return created;
    return this.get(id, caller); // created meanwhile by another request
  }

  /**
   * A page of sessions as summaries. The time comes as ISO text from PostgreSQL itself: parsing
   * timestamps into Dates only to print them again was a tenth of the runtime's CPU per list.
   */
  async list(opts: {
    limit: number;
    offset: number;
    activeOnly: boolean;
    caller: Caller;
  }): Promise<{ sessions: SessionSummary[]; total: number }> {
    const params: unknown[] = [];
    let where = `deleted_at IS NULL${opts.activeOnly ? ` AND ${this.active}` : ''}`;
    if (opts.caller !== undefined) {
      params.push(opts.caller);
      where += ` AND owner_sub = $${params.length}`;
    }
    // One row more than the page: when it does not come, the page ends the list and the total is
    // known without counting (the common case: a user's sessions fit in a page).
    const page = await this.db.query<SessionSummary>(
      `SELECT ${SUMMARY_COLUMNS}, ${this.active} AS is_active FROM sessions WHERE ${where} ORDER BY sessions.last_activity DESC, id LIMIT $${params.length + 1} OFFSET $${params.length + 2}`,
      [...params, opts.limit + 1, opts.offset],
    );
    const sessions = page.rows.slice(0, opts.limit);
    if (page.rows.length <= opts.limit && (page.rows.length > 0 || opts.offset === 0)) {
      return { sessions, total: opts.offset + page.rows.length };
    }
    const count = await this.db.query<{ total: string }>(`SELECT count(*) AS total FROM sessions WHERE ${where}`, params);
    return { sessions, total: Number(count.rows[0]?.total ?? 0) };
  }

  /**
   * Stores a message as the session's next. In `q`'s transaction when given; a turn's store (with a
   * fence) otherwise writes it in one statement that holds the lease's condition itself, and with
   * `end` that statement is the turn's last commit: it also frees the session (`frame_seq` and
   * `final_frame` set, see migration 004) and inserts the bookkeeping rows `end.rows` took along.
   */
  async append(sessionId: string, msg: NewMessage, q?: Queryable, end?: TurnEnd): Promise<StoredMessage> {
    const id = randomUUID();
    const title = msg.role === 'user' && msg.content ? msg.content.trim().slice(0, 500) : null;
    const fence = q === undefined ? this.fence : undefined;
    if (end && !fence) throw new Error('a turn ends by its own fenced store');
    fence?.check();
    const params: unknown[] = [
      sessionId,
      id,
      title,
      msg.role,
      msg.content,
      msg.name ?? null,
      msg.tool_call_id ?? null,
      msg.tool_calls ? JSON.stringify(msg.tool_calls) : null,
      msg.token_count ?? null,
      msg.metadata ? JSON.stringify(msg.metadata) : null,
      ...(fence?.owners ?? []),
    ];
    let release = '';
    let rows = '';
    if (end) {
      params.push(end.frameSeq, end.finalFrame);
      release = `, lease_owner = NULL, lease_until = NULL, frame_seq = $${params.length - 1}, final_frame = $${params.length}`;
      const taken = end.rows?.ctes(params.length);
      if (taken) {
        params.push(...taken.params);
        rows = `, ${taken.sql}`;
      }
    }
    const text = `WITH s AS (
         UPDATE sessions SET message_count = message_count + 1, last_activity = now(), title = COALESCE(title, $3)${release}
         WHERE id = $1 AND deleted_at IS NULL${fence ? ' AND (lease_owner = $11 OR lease_owner LIKE $12)' : ''} RETURNING message_count)${rows}
       INSERT INTO messages (id, session_id, seq, role, content, name, tool_call_id, tool_calls, token_count, metadata)
       SELECT $2, $1, s.message_count, $4, $5, $6, $7, $8, $9, $10 FROM s
       RETURNING seq, created_at`;
    let result: { rows: { seq: number; created_at: Date }[] };
    try {
      result = await (fence?.db ?? q ?? this.db).query<{ seq: number; created_at: Date }>(text, params);
    } catch (err) {
      if (!rows) throw err;
      // the rows taken along (another session's, say) must not cost the answer: without them
      end!.rows!.failed();
      return this.append(sessionId, msg, q, { frameSeq: end!.frameSeq, finalFrame: end!.finalFrame });
    }
    if (rows) end!.rows!.written();
    const row = result.rows[0];
    if (!row) {
      if (fence) {
        // which condition failed: a lease someone else holds stops the turn, a deleted session is an error
        const { rows: held } = await fence.db.query<{ ours: boolean }>(
          `SELECT (lease_owner = $2 OR lease_owner LIKE $3) IS TRUE AS ours FROM sessions WHERE id = $1`,
          [sessionId, ...fence.owners],
        );
        if (!held[0]?.ours) fence.refused();
      }
      throw new Error(`session ${sessionId} not found`);
    }
    return { ...msg, id, seq: row.seq, created_at: row.created_at };
  }

  /**
   * The session's messages, oldest first, with the edits people made to tool calls applied (see
   * `applyEdits`): what the LLM is sent and what `/history` shows.
   */
  async messages(sessionId: string): Promise<StoredMessage[]> {
    const { rows } = await this.db.query<HistoryRow>(`SELECT ${HISTORY_COLUMNS} FROM messages WHERE session_id = $1 ORDER BY seq`, [
      sessionId,
    ]);
    return historyOf(rows);
  }

  /** The session's agent switches, oldest first (`agent_switches`, as `/agents/:id/current` lists them). */
  agentSwitches(sessionId: string): Promise<AgentSwitch[]> {
    return this.contexts.history(sessionId);
  }
}

/** A message's own columns (a HistoryRow but `edits`). */
export const MESSAGE_COLUMNS = 'id, seq, role, content, name, tool_call_id, tool_calls, token_count, created_at';

/** The session's edited tool calls (`ToolCallEdit[]`, NULL for none): a scalar subquery of session `$1`. */
export const SESSION_EDITS = `(SELECT json_agg(json_build_object('call_id', call_id, 'arguments', arguments, 'final_arguments', final_arguments))
   FROM tool_calls
   WHERE session_id = $1 AND decision = 'edit' AND final_arguments IS NOT NULL AND final_arguments <> arguments)`;

/**
 * A session's history as one statement reads it (`messages`; the statement that takes a turn's
 * lease reads the same columns: turn/session-lease.ts): the messages, and on each row the
 * session's edited calls, a subquery PostgreSQL runs once (an InitPlan) whose answer is NULL in
 * the usual case of none.
 * Approve also records final_arguments (unchanged): only a real change is an edit. `$1` is the session.
 */
export const HISTORY_COLUMNS = `${MESSAGE_COLUMNS}, ${SESSION_EDITS} AS edits`;

/** A row of HISTORY_COLUMNS: a message's empty columns are NULL. */
export type HistoryRow = Omit<StoredMessage, 'name' | 'tool_call_id' | 'tool_calls' | 'token_count'> & {
  name: string | null;
  tool_call_id: string | null;
  tool_calls: unknown[] | null;
  token_count: number | null;
  edits: ToolCallEdit[] | null;
};

/**
 * The history from rows of HISTORY_COLUMNS in `seq` order, edits applied. The rows keep their
 * NULLs and the `edits` column: every reader of a StoredMessage takes an empty field as absent and
 * picks the fields it sends.
 */
export function historyOf(rows: HistoryRow[]): StoredMessage[] {
  return applyEdits(rows as StoredMessage[], rows[0]?.edits ?? []);
}

/** A tool call a person edited before approving it. */
export interface ToolCallEdit {
  call_id: string;
  arguments: Record<string, unknown>;
  final_arguments: Record<string, unknown>;
}

function isToolCall(c: unknown): c is ToolCall {
  return (
    typeof c === 'object' && c !== null && typeof (c as ToolCall).id === 'string' && typeof (c as ToolCall).function?.name === 'string'
  );
}

/**
 * Applies people's edits to stored messages (the stored rows are never rewritten): the assistant
 * message's call carries the arguments it was approved with (a JSON string, as providers expect)
 * and keeps the proposal in `original_tool_calls`; the call's result is marked `edited_from`.
 */
export function applyEdits(messages: StoredMessage[], edits: readonly ToolCallEdit[]): StoredMessage[] {
  if (!edits.length) return messages;
  const byId = new Map(edits.map((e) => [e.call_id, e]));
  return messages.map((m) => {
    if (m.role === 'assistant' && m.tool_calls?.some((c) => isToolCall(c) && byId.has(c.id))) {
      const calls = m.tool_calls.map((c) => {
        const edit = isToolCall(c) ? byId.get(c.id) : undefined;
        return edit && isToolCall(c) ? { ...c, function: { ...c.function, arguments: JSON.stringify(edit.final_arguments) } } : c;
      });
      return { ...m, tool_calls: calls, original_tool_calls: m.tool_calls };
    }
    const edit = m.role === 'tool' && m.tool_call_id ? byId.get(m.tool_call_id) : undefined;
    return edit ? { ...m, edited_from: edit.arguments } : m;
  });
}

/** Longest proposal (JSON characters) the edit note repeats to the LLM. */
export const EDIT_NOTE_MAX_CHARS = 2000;

/** What the LLM reads before the result of a call a person edited. */
export function editNote(proposed: Record<string, unknown>): string {
  let text = JSON.stringify(proposed);
  if (text.length > EDIT_NOTE_MAX_CHARS) text = `${text.slice(0, EDIT_NOTE_MAX_CHARS)}… (cut)`;
  return `[The user edited the arguments of this tool call before approving it: the call shows the arguments it was approved with. You had proposed: ${text}]`;
}

/** A stored message as the LLM gets it (optional fields only when set; the result of an edited call starts with `editNote`). */
export function toChatMessage(m: StoredMessage): ChatMessage & { role: StoredMessage['role']; content: string } {
  const content = m.content ?? '';
  return {
    role: m.role,
    content: m.edited_from ? `${editNote(m.edited_from)}\n\n${content}` : content,
    ...(m.name ? { name: m.name } : {}),
    ...(m.tool_call_id ? { tool_call_id: m.tool_call_id } : {}),
    ...(m.tool_calls && m.tool_calls.length ? { tool_calls: m.tool_calls } : {}),
  };
}

/** `/history`'s message: upstream's (the LLM's fields), its number and time, and `original_tool_calls` after an edit. */
export type HistoryMessageDto = HistoryMessage & { original_tool_calls?: unknown[] };

/** A stored message in upstream's history shape: the LLM's fields, its number and time. */
export function historyMessage(m: StoredMessage): HistoryMessageDto {
  return {
    ...toChatMessage(m),
    seq: m.seq,
    created_at: m.created_at.toISOString(),
    ...(m.original_tool_calls ? { original_tool_calls: m.original_tool_calls } : {}),
  };
}
