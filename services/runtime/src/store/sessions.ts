/**
 * Sessions and messages in PostgreSQL. Appends are single statements: the session row's counter is
 * bumped and the message inserted with that number, so history is never rewritten.
 */
import { randomUUID } from 'node:crypto';
import type { Database, Queryable } from '@codelab/service-kit';
import type { ChatMessage, HistoryMessage, SessionSummary } from '@codelab/protocol';

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
}

const SESSION_COLUMNS = 'id, owner_sub, title, current_agent, message_count, is_active, created_at, last_activity';

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
 * Whose sessions a call may see: a user id (the JWT `sub` the gateway forwards) sees only the
 * sessions it owns; `undefined` (authentication off, development) sees every session.
 */
export type Caller = string | undefined;

export function visibleTo(row: SessionRow, caller: Caller): boolean {
  return caller === undefined || row.owner_sub === caller;
}

export class SessionStore {
  constructor(private readonly db: Database) {}

  /** Creates a session; returns undefined when the id is taken. */
  async create(id: string, ownerSub: string | null): Promise<SessionRow | undefined> {
    const { rows } = await this.db.query<SessionRow>(
      `INSERT INTO sessions (id, owner_sub) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING RETURNING ${SESSION_COLUMNS}`,
      [id, ownerSub],
    );
    return rows[0];
  }

  /** The session, whoever owns it (callers check `visibleTo`). */
  async find(id: string): Promise<SessionRow | undefined> {
    const { rows } = await this.db.query<SessionRow>(`SELECT ${SESSION_COLUMNS} FROM sessions WHERE id = $1 AND deleted_at IS NULL`, [id]);
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

  async list(opts: { limit: number; offset: number; activeOnly: boolean; caller: Caller }): Promise<{ sessions: SessionRow[]; total: number }> {
    const params: unknown[] = [];
    let where = `deleted_at IS NULL${opts.activeOnly ? ' AND is_active' : ''}`;
    if (opts.caller !== undefined) {
      params.push(opts.caller);
      where += ` AND owner_sub = $${params.length}`;
    }
    const [page, count] = await Promise.all([
      this.db.query<SessionRow>(
        `SELECT ${SESSION_COLUMNS} FROM sessions WHERE ${where} ORDER BY last_activity DESC, id LIMIT $${params.length + 1} OFFSET $${params.length + 2}`,
        [...params, opts.limit, opts.offset],
      ),
      this.db.query<{ total: string }>(`SELECT count(*) AS total FROM sessions WHERE ${where}`, params),
    ]);
    return { sessions: page.rows, total: Number(count.rows[0]?.total ?? 0) };
  }

  /** Appends one message with the session's next sequence number (one statement, atomic). */
  async append(sessionId: string, msg: NewMessage, q: Queryable = this.db): Promise<StoredMessage> {
    const id = randomUUID();
    const title = msg.role === 'user' && msg.content ? msg.content.trim().slice(0, 500) : null;
    const { rows } = await q.query<{ seq: number; created_at: Date }>(
      `WITH s AS (
         UPDATE sessions SET message_count = message_count + 1, last_activity = now(), title = COALESCE(title, $3)
         WHERE id = $1 AND deleted_at IS NULL RETURNING message_count)
       INSERT INTO messages (id, session_id, seq, role, content, name, tool_call_id, tool_calls, token_count, metadata)
       SELECT $2, $1, s.message_count, $4, $5, $6, $7, $8, $9, $10 FROM s
       RETURNING seq, created_at`,
      [
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
      ],
    );
    const row = rows[0];
    if (!row) throw new Error(`session ${sessionId} not found`);
    return { ...msg, id, seq: row.seq, created_at: row.created_at };
  }

  async messages(sessionId: string): Promise<StoredMessage[]> {
    const { rows } = await this.db.query<StoredMessage & { name: string | null; tool_call_id: string | null; tool_calls: unknown[] | null }>(
      `SELECT id, seq, role, content, name, tool_call_id, tool_calls, token_count, created_at
       FROM messages WHERE session_id = $1 ORDER BY seq`,
      [sessionId],
    );
    return rows;
  }
}

/** A stored message as the LLM gets it (optional fields only when set). */
export function toChatMessage(m: StoredMessage): ChatMessage & { role: StoredMessage['role']; content: string } {
  return {
    role: m.role,
    content: m.content ?? '',
    ...(m.name ? { name: m.name } : {}),
    ...(m.tool_call_id ? { tool_call_id: m.tool_call_id } : {}),
    ...(m.tool_calls && m.tool_calls.length ? { tool_calls: m.tool_calls } : {}),
  };
}

/** A stored message in upstream's history shape: the LLM's fields, its number and time. */
export function historyMessage(m: StoredMessage): HistoryMessage {
  return { ...toChatMessage(m), seq: m.seq, created_at: m.created_at.toISOString() };
}
