/**
 * chat: one IDE conversation per iteration over the gateway's WebSocket (`ws`), the token in
 * `?access_token=`, as loadtests/k6/chat.ts has it: CHAT_TURNS user messages one after the other,
 * with short scripted answers (`[[mock:words 20]]`); the second asks for a read_file call, answered
 * with its content (`tool_result`); the third for a write_file call, which needs approval: approved
 * with `hitl_decision`, then executed (`tool_result`). Any other call is answered the same way.
 *
 * A turn is one inbound turn frame (user_message, tool_result, hitl_decision) up to the frame with
 * `is_final: true`, tagged with the frame's type:
 * - `chat_time_to_first_token`: frame sent → first frame with a token (turns that stream tokens);
 * - `chat_inter_token_gap`: between consecutive token frames;
 * - `chat_turn_duration`: frame sent → final frame (or the give-up);
 * - `chat_turns_failed`: it ended with an `error` frame, timed out (--turn-timeout), lost its
 *   connection, or was cut at the end of the run; a conversation that cannot connect fails its
 *   first turn.
 * Every numbered frame goes through the session's seq accounting: a jump counts in
 * `chat_frames_missed`, a number not above the last one in `chat_frames_out_of_order`.
 */
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import type { StreamChunk } from '@codelab/protocol';
import { CHAT_TURNS } from '../../lib/profiles.ts';
import { TokenSource } from './token.ts';
import type { Recorder, Scenario } from './types.ts';
import { MAX_TURNS_PER_MESSAGE, nextTurnFrame, SeqTracker, userMessage } from '../../lib/conversation.ts';

/** An outbound frame as the gateway sends it. */
type Frame = StreamChunk;

interface TurnResult {
  final: Frame | undefined;
  timeToFirstToken: number | undefined;
  interTokenGaps: number[];
  duration: number;
  failed: boolean;
  /** The error frame's code, `timeout`, `closed` or `interrupted`. */
  reason: string | undefined;
}

type GaveUp = 'timeout' | 'closed' | 'interrupted';

/** One WebSocket conversation: frames queue up with their arrival time; `turn` sends one frame and follows it. */
class Conversation {
  private readonly queue: { frame: Frame; at: number }[] = [];
  private wake: (() => void) | undefined;
  closed = false;
  private readonly seqs = new SeqTracker();

  readonly ws: WebSocket;
  private readonly metrics: Recorder;

  constructor(ws: WebSocket, metrics: Recorder) {
    this.ws = ws;
    this.metrics = metrics;
    ws.on('message', (data, isBinary) => {
      const at = performance.now();
      metrics.add('ws_msgs_received', 1);
      if (isBinary) return;
      let frame: Frame;
      try {
        frame = JSON.parse(String(data)) as Frame;
      } catch {
        return;
      }
      if (frame === null || typeof frame !== 'object' || typeof frame.type !== 'string') return;
      const { missed, outOfOrder } = this.seqs.observe(frame.seq);
      if (missed) metrics.add('chat_frames_missed', missed);
      if (outOfOrder) metrics.add('chat_frames_out_of_order', 1);
      this.queue.push({ frame, at });
      this.notify();
    });
    ws.on('close', () => {
      this.closed = true;
      this.notify();
    });
    ws.on('error', () => this.notify());
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private async next(deadline: number, signal: AbortSignal): Promise<{ frame: Frame; at: number } | GaveUp> {
    for (;;) {
      const got = this.queue.shift();
      if (got) return got;
      if (signal.aborted) return 'interrupted';
      if (this.closed) return 'closed';
      const left = deadline - performance.now();
      if (left <= 0) return 'timeout';
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, left);
        signal.addEventListener('abort', done, { once: true });
        this.wake = done;
      });
    }
  }

  async turn(frame: object, timeoutMs: number, signal: AbortSignal): Promise<TurnResult> {
    const started = performance.now();
    let first: number | undefined;
    let last: number | undefined;
    const gaps: number[] = [];
    const finish = (final: Frame | undefined, gaveUp?: GaveUp): TurnResult => {
      const errorFinal = final?.type === 'error';
      return {
        final,
        timeToFirstToken: first === undefined ? undefined : first - started,
        interTokenGaps: gaps,
        duration: performance.now() - started,
        failed: gaveUp !== undefined || errorFinal || final === undefined,
        reason: gaveUp ?? (errorFinal ? (final.code ?? 'error') : undefined),
      };
    };
    if (this.closed) return finish(undefined, 'closed');
    this.ws.send(JSON.stringify(frame));
    this.metrics.add('ws_msgs_sent', 1);
    const deadline = started + timeoutMs;
    for (;;) {
      const got = await this.next(deadline, signal);
      if (typeof got === 'string') return finish(undefined, got);
      const { frame: f, at } = got;
      if (typeof f.token === 'string' && f.token !== '') {
        if (first === undefined) first = at;
        else if (last !== undefined) gaps.push(at - last);
        last = at;
      }
      if (f.is_final === true) return finish(f);
    }
  }
}

/**
 * Opens the WebSocket and hands it to `opened` inside its 'open' event, so that the listeners
 * `opened` attaches see every frame and close: frames read together with the upgrade response are
 * emitted on the next tick, before an awaiting caller would run. Answers what `opened` made, or why
 * the connection did not open.
 */
function connect<T>(url: string, signal: AbortSignal, timeoutMs: number, opened: (ws: WebSocket) => T): Promise<T | string> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: timeoutMs });
    const settle = (value: 'open' | string): void => {
      signal.removeEventListener('abort', onAbort);
      ws.removeAllListeners('open').removeAllListeners('unexpected-response');
      ws.removeAllListeners('error').on('error', () => undefined); // later errors surface as a close
      if (value !== 'open') {
        ws.terminate();
        resolve(value);
      } else resolve(opened(ws));
    };
    const onAbort = (): void => settle('interrupted');
    signal.addEventListener('abort', onAbort, { once: true });
    ws.once('open', () => settle('open'));
    ws.once('unexpected-response', (_req, res) => settle(`handshake_${res.statusCode}`));
    ws.once('error', (err) => settle(`not_opened: ${err.message}`));
  });
}

export const chat: Scenario<{ tokens: TokenSource; wsBase: string }> = {
  name: 'chat',
  description: `a WebSocket conversation of ${CHAT_TURNS} user messages (a scripted answer, a read_file tool call, a write_file call approved with hitl_decision)`,
  needs: ['auth', 'gateway'],
  metrics: [
    { name: 'chat_time_to_first_token', type: 'trend', unit: 'ms', description: 'turn frame sent → first frame with a token' },
    { name: 'chat_inter_token_gap', type: 'trend', unit: 'ms', description: 'between consecutive token frames' },
    { name: 'chat_turn_duration', type: 'trend', unit: 'ms', description: 'turn frame sent → final frame' },
    { name: 'chat_turns_failed', type: 'rate', description: 'turns that ended with an error frame, timed out or lost the connection' },
    { name: 'chat_frames_missed', type: 'counter', description: 'numbered frames never received (a jump in seq)' },
    { name: 'chat_frames_out_of_order', type: 'counter', description: 'frames whose seq was not above the previous one' },
    { name: 'ws_connecting', type: 'trend', unit: 'ms', description: 'WebSocket handshake' },
    { name: 'ws_sessions', type: 'counter', description: 'WebSocket connections opened' },
    { name: 'ws_msgs_sent', type: 'counter', description: 'frames sent' },
    { name: 'ws_msgs_received', type: 'counter', description: 'frames received' },
  ],
  latencyMetric: 'chat_turn_duration',
  errorMetric: 'chat_turns_failed',
  ttftMetric: 'chat_time_to_first_token',
  async setup(env) {
    return { tokens: await TokenSource.login(env), wsBase: env.targets.gateway.replace(/^http/, 'ws') };
  },
  async iteration(state, ctx, env) {
    const { metrics } = env;
    const sessionId = `load-${ctx.vu}-${ctx.iteration}-${randomUUID().slice(0, 8)}`;
    const url = `${state.wsBase}/api/v1/ws/${sessionId}?access_token=${encodeURIComponent(await state.tokens.get())}`;
    const began = performance.now();
    const conv = await connect(url, ctx.signal, Math.min(10_000, env.turnTimeoutMs), (ws) => new Conversation(ws, metrics));
    if (typeof conv === 'string') {
      metrics.check('the conversation WebSocket opens', false);
      // the user could not say anything: the first message's turn failed
      metrics.add('chat_turns_failed', true, { frame: 'user_message', reason: conv.startsWith('not_opened') ? 'not_opened' : conv });
      return;
    }
    metrics.check('the conversation WebSocket opens', true);
    metrics.add('ws_connecting', performance.now() - began);
    metrics.add('ws_sessions', 1);
    const { ws } = conv;
    try {
      let answered = 0;
      while (answered < CHAT_TURNS && (await exchange(conv, userMessage(answered), env.turnTimeoutMs, ctx.signal, metrics))) answered++;
      metrics.check('every message of the conversation is answered', answered === CHAT_TURNS);
    } finally {
      if (ctx.signal.aborted || conv.closed) ws.terminate();
      else {
        const closing = new Promise<void>((resolve) => ws.once('close', () => resolve()));
        ws.close(1000);
        const timer = setTimeout(() => ws.terminate(), 2000);
        await closing;
        clearTimeout(timer);
      }
    }
  },
};

function record(metrics: Recorder, frameType: string, r: TurnResult): void {
  const tags = { frame: frameType };
  metrics.add('chat_turns_failed', r.failed, r.reason ? { ...tags, reason: r.reason } : tags);
  metrics.add('chat_turn_duration', r.duration, tags);
  if (r.timeToFirstToken !== undefined) metrics.add('chat_time_to_first_token', r.timeToFirstToken, tags);
  for (const gap of r.interTokenGaps) metrics.add('chat_inter_token_gap', gap, tags);
  metrics.check('the turn ends with a final frame that is not an error', !r.failed);
}

/** One user message and the tool turns it leads to; true once the assistant has answered it. */
async function exchange(conv: Conversation, message: string, timeoutMs: number, signal: AbortSignal, metrics: Recorder): Promise<boolean> {
  let frame: Record<string, unknown> & { type: string } = { type: 'user_message', content: message, role: 'user' };
  for (let turn = 0; turn < MAX_TURNS_PER_MESSAGE; turn++) {
    const result = await conv.turn(frame, timeoutMs, signal);
    record(metrics, frame.type, result);
    if (result.failed || !result.final) return false;
    const next = nextTurnFrame(result.final);
    if (next === 'answered') return true;
    if (!next) return false;
    frame = next;
  }
  return false;
}
