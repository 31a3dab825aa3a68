/**
 * Witness conversations for the fault suite: IDE-like clients through nginx that do what the
 * protocol tells a client to do when its connection drops (reconnect with `last_seq`, keep waiting
 * for the turn's final frame) and keep a log of everything they received, so that after a fault the
 * suite can check every frame number arrived exactly once and every acknowledged message is in the
 * database.
 */
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';

export type Frame = Record<string, unknown>;

export interface TurnRecord {
  content: string;
  /** The final frame's type (`assistant_message`, `tool_call`, `error`) and, for errors, its code. */
  outcome: string;
  /** The runtime started the turn: the client saw a token or a numbered final frame of it. */
  acknowledged: boolean;
  finalContent?: string;
  sentAt: number;
  endedAt: number;
  /** Connections this turn needed (1: none dropped). */
  connections: number;
  /** For a turn without a final frame: its last frames and the connection closes, to tell a slow machine from a lost turn. */
  detail?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One session's conversation: turns one after the other, resuming after a dropped connection. */
export class WitnessConversation {
  readonly sessionId = `witness-${randomUUID()}`;
  /** Every frame received, across connections, in arrival order. */
  readonly frames: Frame[] = [];
  readonly turns: TurnRecord[] = [];
  /** Close codes of the connections that ended under the client. */
  readonly drops: number[] = [];
  /** What happened to the connection, with times (ms epoch): drops, failed attempts, reconnects. */
  readonly events: { at: number; what: string }[] = [];
  private ws: WebSocket | undefined;
  private lastSeq = 0;
  private wake: (() => void) | undefined;
  private readonly wsBase: string;
  private readonly token: () => string;

  constructor(wsBase: string, token: () => string) {
    this.wsBase = wsBase;
    this.token = token;
  }

  private async connect(deadline: number): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const query = this.lastSeq > 0 ? `?last_seq=${this.lastSeq}` : '';
      const ws = new WebSocket(`${this.wsBase}/api/v1/ws/${this.sessionId}${query}`, {
        headers: { authorization: `Bearer ${this.token()}` },
        handshakeTimeout: 10_000, // as an IDE gives up on a connection attempt and tries again
      });
      // Every listener is attached before the handshake ends, and the connection taken in the
      // 'open' event itself: frames that arrive in the same read as the upgrade response (a replay
      // the gateway sends at once) are emitted on the next tick, before the continuation of an
      // `await` on 'open' could attach a listener; they were lost that way once (CI, stop 29).
      ws.on('message', (data) => this.received(data));
      ws.once('close', (code) => {
        if (this.ws === ws) {
          this.ws = undefined;
          this.drops.push(code);
          this.events.push({ at: Date.now(), what: `closed ${code} (last_seq ${this.lastSeq})` });
        }
        this.wake?.();
      });
      const opened = await new Promise<boolean>((resolve) => {
        ws.once('open', () => {
          this.ws = ws;
          this.events.push({ at: Date.now(), what: `connected${query}` });
          resolve(true);
        });
        ws.once('error', (err) => {
          this.events.push({ at: Date.now(), what: `attempt ${attempt}: ${err.message}` });
          resolve(false);
        });
        ws.once('unexpected-response', (_req, res) => {
          this.events.push({ at: Date.now(), what: `attempt ${attempt}: HTTP ${res.statusCode}` });
          resolve(false);
        });
      });
      if (opened) return;
      ws.terminate();
      if (Date.now() > deadline) throw new Error(`${this.sessionId}: cannot reconnect through nginx`);
      await sleep(Math.min(2000, 100 * 2 ** attempt));
    }
  }

  private received(data: WebSocket.RawData): void {
    let frame: Frame;
    try {
      frame = JSON.parse(String(data)) as Frame;
    } catch {
      return;
    }
    if (typeof frame.seq === 'number') this.lastSeq = Math.max(this.lastSeq, frame.seq);
    this.frames.push(frame);
    this.wake?.();
  }

  /** Sends one user message and follows its turn to the final frame, resuming when the connection drops. */
  async turn(content: string, timeoutMs = 90_000): Promise<TurnRecord> {
    const sentAt = Date.now();
    const deadline = sentAt + timeoutMs;
    if (!this.ws) await this.connect(deadline);
    let connections = 1;
    const from = this.frames.length;
    this.ws!.send(JSON.stringify({ type: 'user_message', content }));
    for (;;) {
      // frames of an earlier turn the gateway replays before this one's (metadata.replayed) are not this turn's
      const mine = this.frames.slice(from).filter((f) => (f.metadata as { replayed?: boolean } | undefined)?.replayed !== true);
      const final = mine.find((f) => f.is_final === true);
      if (final) {
        const record: TurnRecord = {
          content,
          outcome: final.type === 'error' ? `error:${String(final.code)}` : String(final.type),
          acknowledged: mine.some((f) => typeof f.token === 'string') || typeof final.seq === 'number',
          finalContent: typeof final.content === 'string' ? final.content : undefined,
          sentAt,
          endedAt: Date.now(),
          connections,
        };
        this.turns.push(record);
        return record;
      }
      if (Date.now() > deadline) {
        const record: TurnRecord = {
          content,
          outcome: 'no final frame',
          acknowledged: mine.length > 0,
          sentAt,
          endedAt: Date.now(),
          connections,
          detail: `${mine.length} frames, last ${JSON.stringify(mine.slice(-3)).slice(0, 600)}; closes ${JSON.stringify(this.drops)}; last_seq ${this.lastSeq}; connections ${connections}; sent at ${new Date(sentAt).toISOString()}, since: ${this.events
            .filter((e) => e.at >= sentAt)
            .map((e) => `+${e.at - sentAt} ms ${e.what}`)
            .join(', ')}`,
        };
        this.turns.push(record);
        return record;
      }
      if (!this.ws) {
        await this.connect(deadline);
        connections++;
        continue;
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 200);
      });
    }
  }

  /** The content of every complete answer received (a turn's own, or one replayed late). */
  answersSeen(): Set<string> {
    return new Set(
      this.frames
        .filter((f) => f.type === 'assistant_message' && f.is_final === true && typeof f.content === 'string')
        .map((f) => String(f.content)),
    );
  }

  /** Numbered frames that arrived twice, and numbers that never arrived (up to the highest seen). */
  seqProblems(): { duplicates: number[]; missing: number[] } {
    const seen = new Map<number, number>();
    for (const f of this.frames) if (typeof f.seq === 'number') seen.set(f.seq, (seen.get(f.seq) ?? 0) + 1);
    const duplicates = [...seen].filter(([, n]) => n > 1).map(([s]) => s);
    const max = Math.max(0, ...seen.keys());
    const missing: number[] = [];
    for (let s = 1; s <= max; s++) if (!seen.has(s)) missing.push(s);
    return { duplicates, missing };
  }

  close(): void {
    this.ws?.close();
  }
}

/** A few witness conversations in loops until stopped: steady traffic whose every frame is accounted for. */
export class Witnesses {
  readonly conversations: WitnessConversation[];
  private stopping = false;
  private loops: Promise<void>[] = [];

  constructor(count: number, wsBase: string, token: () => string) {
    this.conversations = Array.from({ length: count }, () => new WitnessConversation(wsBase, token));
  }

  /** `content(i, n)`: the n-th message of conversation i. */
  start(content: (i: number, n: number) => string): void {
    this.stopping = false;
    this.loops = this.conversations.map(async (c, i) => {
      for (let n = c.turns.length; !this.stopping; n++) {
        const t = await c.turn(content(i, n));
        // as an IDE would: after a failed turn, a moment before the next message
        if (t.outcome !== 'assistant_message') await sleep(500);
      }
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
  }

  get turns(): TurnRecord[] {
    return this.conversations.flatMap((c) => c.turns);
  }

  /** Turns that ended since `since` (ms epoch) with the outcome `outcome` (default: an answer). */
  count(since: number, outcome = 'assistant_message'): number {
    return this.turns.filter((t) => t.sentAt >= since && t.outcome === outcome).length;
  }

  close(): void {
    for (const c of this.conversations) c.close();
  }
}
