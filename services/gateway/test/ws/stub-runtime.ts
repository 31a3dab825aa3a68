/**
 * A stand-in agent runtime on a loopback port, speaking exactly the gateway → runtime contract the
 * WebSocket needs: `POST /agent/message/stream` (with `new_session`), `GET /sessions/:id/frames`,
 * `POST /sessions/:id/cancel`, `GET /sessions/:id/pending-approvals`, `GET /sessions/:id/access`
 * (`frames?until=` answers the logged frames up to it, without following a running turn).
 * Every chunk gets the session's next seq and is logged; a test scripts what a turn does. The turn
 * stream says the seq before the turn (`x-codelab-frame-seq`), as the runtime's does.
 */
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import type { AgentStreamRequest, StreamChunk } from '@codelab/protocol';
import { createH2cCapableServer } from '@codelab/service-kit';

export interface StubTurn {
  sessionId: string;
  request: AgentStreamRequest;
  /** Sends a chunk (with the session's next seq), logs it and passes it to replays watching the turn. */
  emit(chunk: Omit<StreamChunk, 'seq'>): StreamChunk;
  /** Aborted by `POST /sessions/:id/cancel`. */
  cancelled: AbortSignal;
  /** The gateway went away (the turn goes on, as the real runtime's does). */
  clientGone: AbortSignal;
  /** Cuts the turn's stream to the gateway mid-turn (as a dying runtime or network would); the turn goes on and is logged. */
  breakStream(): void;
}

interface StubSession {
  owner: string | undefined;
  seq: number;
  log: StreamChunk[];
  running: { cancel: AbortController; watchers: Set<(chunk: StreamChunk) => void> } | undefined;
  approvals: Record<string, unknown>[];
}

/** The default turn: three tokens, then the final answer. */
export async function answerTurn(turn: StubTurn): Promise<void> {
  const content =
    'message' in turn.request && turn.request.message.type === 'user_message' ? turn.request.message.content : turn.request.message.type;
  const tokens = ['You ', 'said ', content];
  for (const token of tokens) turn.emit({ type: 'assistant_message', token, is_final: false });
  turn.emit({ type: 'assistant_message', content: tokens.join(''), is_final: true });
}

export class StubRuntime {
  // HTTP/1.1 and h2c on one port, as the real runtime's (the gateway streams turns over h2c)
  readonly app: FastifyInstance = Fastify({ serverFactory: createH2cCapableServer });
  readonly sessions = new Map<string, StubSession>();
  /** Every call the gateway made, in order. */
  readonly calls: { method: string; url: string; body?: unknown }[] = [];
  /** What a turn does; replace it in a test. */
  script: (turn: StubTurn) => Promise<void> = answerTurn;
  /** false: `GET /sessions/:id/frames` answers 503 (no runtime can serve the log). */
  framesAvailable = true;
  /**
   * The next `count` follows of a running turn stop after the logged frames, before its live ones:
   * `break` destroys the stream (a runtime that died), `end` ends it cleanly (one cut at shutdown).
   */
  cutFollows: { count: number; how: 'break' | 'end' } = { count: 0, how: 'break' };
  url = '';
  private created = 0;

  constructor() {
    this.app.addHook('onRequest', async (req) => {
      if (req.url !== '/health') this.calls.push({ method: req.method, url: req.url });
    });
    this.app.addHook('preHandler', async (req) => {
      if (req.body !== undefined) this.calls.at(-1)!.body = req.body;
    });
    this.app.get('/health', async () => ({ status: 'ok' }));
    this.app.get<{ Params: { id: string } }>('/sessions/:id/access', async (req) => {
      const s = this.sessions.get(req.params.id);
      return { exists: s !== undefined, allowed: !s || s.owner === req.headers['x-codelab-user'] };
    });
    this.app.post<{ Body: AgentStreamRequest }>('/agent/message/stream', (req, reply) =>
      this.stream(req.body, req.headers['x-codelab-user'] as string | undefined, reply),
    );
    this.app.get<{ Params: { id: string }; Querystring: { after?: string; until?: string } }>('/sessions/:id/frames', (req, reply) => {
      if (!this.framesAvailable) return reply.status(503).send({ error: { code: 'ERR_SHUTTING_DOWN', message: 'unavailable' } });
      const s = this.sessions.get(req.params.id);
      if (!s) return reply.status(404).send({ error: { code: 'RT_ERR_SESSION_NOT_FOUND', message: 'Session not found' } });
      const after = Number(req.query.after ?? 0);
      const until = req.query.until === undefined ? Number.POSITIVE_INFINITY : Number(req.query.until);
      const res = sse(reply);
      const logged = s.log
        .filter((chunk) => (chunk.seq ?? 0) > after && (chunk.seq ?? 0) <= until)
        .map((c) => `data: ${JSON.stringify(c)}\n\n`);
      if (!s.running || req.query.until !== undefined) return void res.end(logged.join(''));
      if (this.cutFollows.count > 0) {
        this.cutFollows.count--;
        if (this.cutFollows.how === 'end') return void res.end(logged.join(''));
        // destroyed once the logged frames are on their way (destroying at once would drop them unsent)
        return void (logged.length ? res.write(logged.join(''), () => res.destroy()) : res.destroy());
      }
      for (const frame of logged) res.write(frame);
      const watchers = s.running.watchers;
      const watch = (chunk: StreamChunk): void => {
        res.write(`data: ${JSON.stringify(chunk)}\n\n`);
        if (chunk.is_final) {
          watchers.delete(watch);
          res.end();
        }
      };
      watchers.add(watch);
      res.on('close', () => watchers.delete(watch));
    });
    this.app.post<{ Params: { id: string } }>('/sessions/:id/cancel', async (req, reply) => {
      const s = this.sessions.get(req.params.id);
      if (!s) return reply.status(404).send({ error: { code: 'RT_ERR_SESSION_NOT_FOUND', message: 'Session not found' } });
      if (!s.running) return { cancelled: false };
      s.running.cancel.abort();
      return { cancelled: true };
    });
    this.app.get<{ Params: { id: string } }>('/sessions/:id/pending-approvals', async (req, reply) => {
      const s = this.sessions.get(req.params.id);
      if (!s) return reply.status(404).send({ error: { code: 'RT_ERR_SESSION_NOT_FOUND', message: 'Session not found' } });
      return { session_id: req.params.id, pending_approvals: s.approvals, count: s.approvals.length };
    });
  }

  async start(): Promise<string> {
    this.url = await this.app.listen({ host: '127.0.0.1', port: 0 });
    return this.url;
  }

  close(): Promise<void> {
    return this.app.close();
  }

  session(id: string, owner?: string): StubSession {
    let s = this.sessions.get(id);
    if (!s) this.sessions.set(id, (s = { owner, seq: 0, log: [], running: undefined, approvals: [] }));
    return s;
  }

  /** Calls made to one route (path without the query string). */
  callsTo(method: string, pathPrefix: string): { method: string; url: string; body?: unknown }[] {
    return this.calls.filter((c) => c.method === method && c.url.startsWith(pathPrefix));
  }

  private async stream(body: AgentStreamRequest, caller: string | undefined, reply: FastifyReply): Promise<void> {
    const sessionId = body.new_session ? `sess-${++this.created}` : body.session_id!;
    const s = this.session(sessionId, caller);
    const running = { cancel: new AbortController(), watchers: new Set<(chunk: StreamChunk) => void>() };
    s.running = running;
    const res = sse(reply, { 'x-codelab-frame-seq': String(s.seq) });
    const clientGone = new AbortController();
    res.on('close', () => clientGone.abort());
    const turn: StubTurn = {
      sessionId,
      request: body,
      cancelled: running.cancel.signal,
      clientGone: clientGone.signal,
      emit: (partial) => {
        const chunk = { ...partial, seq: ++s.seq } as StreamChunk;
        s.log.push(chunk);
        if (!res.destroyed) res.write(`data: ${JSON.stringify(chunk)}\n\n`);
        for (const w of [...running.watchers]) w(chunk);
        return chunk;
      },
      breakStream: () => void res.destroy(),
    };
    if (body.new_session) turn.emit({ type: 'session_info', session_id: sessionId, is_final: false });
    try {
      await this.script(turn);
    } finally {
      if (s.running === running) s.running = undefined;
      res.end();
    }
  }
}

function sse(reply: FastifyReply, headers: Record<string, string> = {}) {
  reply.hijack();
  reply.raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', ...headers });
  reply.raw.flushHeaders();
  return reply.raw;
}

/** A turn that streams one token, then waits until it is cancelled (final frame says so) or released. */
export function heldTurn(): { script: (turn: StubTurn) => Promise<void>; started: Promise<StubTurn>; release: () => void } {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let started!: (t: StubTurn) => void;
  const startedP = new Promise<StubTurn>((r) => (started = r));
  return {
    started: startedP,
    release,
    script: async (turn) => {
      turn.emit({ type: 'assistant_message', token: 'Thinking', is_final: false });
      started(turn);
      const cancelled = new Promise<void>((r) => turn.cancelled.addEventListener('abort', () => r(), { once: true }));
      await Promise.race([released, cancelled]);
      if (turn.cancelled.aborted)
        turn.emit({ type: 'assistant_message', content: 'Thinking', is_final: true, metadata: { cancelled: true } });
      else turn.emit({ type: 'assistant_message', content: 'Thinking done', is_final: true });
    },
  };
}
