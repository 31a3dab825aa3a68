/**
 * The histories of the sessions this runtime ran turns of, kept between turns, so that the
 * statement that takes a turn's lease reads only the messages stored since (session-lease.ts):
 * the last answer and the new user message, instead of the whole session (a row per message,
 * 100-200 by a long conversation's hundredth turn, each parsed again every turn).
 *
 * Keeping them is safe because messages are never changed once stored and their numbers (`seq`)
 * run 1, 2, 3… without gaps (a message takes `message_count + 1` in the statement that bumps it):
 * a session's messages 1..n are the same on every instance forever. Whatever another instance
 * stored after them is read by number (`seq >= n`: the last kept one again, whose id must still be
 * the database's, which a restored database would not pass), and the lease statement checks it got
 * all of them (`historyAfterTake`). Edits people made to tool calls are not part of the rows: they
 * are read every turn and applied on top (store/sessions.ts `applyEdits`).
 *
 * Bounded by an estimate of the bytes it holds (AGENT_RUNTIME__HISTORY_CACHE_MB): the sessions
 * used least recently go first; a history larger than the whole budget is not kept.
 */
import type { HistoryRow } from '../store/sessions.ts';

/** What the cache reports (runtime metrics): its size now. */
export interface HistoryCacheGauges {
  set(value: number): void;
}

/** Bytes a kept row costs besides its text (the object, its date, its strings' headers): an estimate. */
const ROW_OVERHEAD = 200;

/** An estimate of the memory a message row holds. */
export function rowBytes(row: HistoryRow): number {
  let n = ROW_OVERHEAD + (row.content?.length ?? 0) + (row.name?.length ?? 0);
  for (const call of row.tool_calls ?? []) {
    const args = (call as { function?: { arguments?: unknown } }).function?.arguments;
    n += ROW_OVERHEAD + (typeof args === 'string' ? args.length : 0);
  }
  return n;
}

interface Kept {
  rows: readonly HistoryRow[];
  bytes: number;
}

export class HistoryCache {
  /** Least recently used first (a Map keeps insertion order; a use moves the session last). */
  private readonly kept = new Map<string, Kept>();
  private total = 0;
  private readonly maxBytes: number;
  private readonly gauges: { bytes?: HistoryCacheGauges; sessions?: HistoryCacheGauges };

  constructor(maxBytes: number, gauges: { bytes?: HistoryCacheGauges; sessions?: HistoryCacheGauges } = {}) {
    if (!Number.isFinite(maxBytes) || maxBytes < 0) throw new Error(`maxBytes must be a non-negative number, got ${maxBytes}`);
    this.maxBytes = maxBytes;
    this.gauges = gauges;
  }

  /** The session's messages 1..n as its last turn on this instance read them; empty when none are kept. */
  get(sessionId: string): readonly HistoryRow[] {
    const entry = this.kept.get(sessionId);
    if (!entry) return [];
    this.kept.delete(sessionId);
    this.kept.set(sessionId, entry);
    return entry.rows;
  }

  /**
   * Keeps the session's messages 1..n (`rows`, in order) for its next turn. `added` are the rows of
   * them that were not kept before (their size is counted; the others' is known).
   */
  keep(sessionId: string, rows: readonly HistoryRow[], added: readonly HistoryRow[]): void {
    const before = this.kept.get(sessionId);
    const bytes = before && before.rows.length + added.length === rows.length ? before.bytes + sum(added) : sum(rows);
    this.drop(sessionId);
    if (bytes > this.maxBytes) return this.report();
    this.kept.set(sessionId, { rows, bytes });
    this.total += bytes;
    for (const [id] of this.kept) {
      if (this.total <= this.maxBytes) break;
      this.drop(id);
    }
    this.report();
  }

  /** Keeps nothing more of the session (its kept rows may not be what the next turn needs). */
  forget(sessionId: string): void {
    this.drop(sessionId);
    this.report();
  }

  /** The estimated bytes held now. */
  get bytes(): number {
    return this.total;
  }

  get sessions(): number {
    return this.kept.size;
  }

  private drop(sessionId: string): void {
    const entry = this.kept.get(sessionId);
    if (!entry) return;
    this.kept.delete(sessionId);
    this.total -= entry.bytes;
  }

  private report(): void {
    this.gauges.bytes?.set(this.total);
    this.gauges.sessions?.set(this.kept.size);
  }
}

function sum(rows: readonly HistoryRow[]): number {
  let n = 0;
  for (const r of rows) n += rowBytes(r);
  return n;
}
