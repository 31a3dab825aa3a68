/**
 * One conversation over the gateway WebSocket (`k6/websockets`): turns one after the other, each
 * sent and then followed frame by frame until its final frame, its timeout, or the connection's
 * end; every numbered frame goes through the session's seq accounting.
 */
import { clearTimeout, setTimeout } from 'k6/timers';
import { WebSocket, type MessageEvent } from 'k6/websockets';
import { SeqTracker, TurnRecorder, parseFrame, type TurnResult } from './frames.ts';

type TimeoutID = ReturnType<typeof setTimeout>;

export class Conversation {
  /** Resolves true once the WebSocket is open, false when it could not be opened. */
  readonly opened: Promise<boolean>;
  /** Frames the session numbered but this connection never received, and frames that came out of order. */
  missed = 0;
  outOfOrder = 0;

  private readonly ws: WebSocket;
  private readonly seqs = new SeqTracker();
  private readonly timeoutMs: number;
  private current: { recorder: TurnRecorder; resolve: (result: TurnResult) => void; timer: TimeoutID } | undefined;
  private closed = false;

  /** `url` carries the token (`?access_token=`); `tags` name the connection in k6's ws_* metrics. */
  constructor(url: string, timeoutMs: number, tags: Record<string, string>) {
    this.timeoutMs = timeoutMs;
    this.ws = new WebSocket(url, null, { tags });
    this.opened = new Promise((resolve) => {
      this.ws.addEventListener('open', () => resolve(true));
      this.ws.addEventListener('error', () => resolve(false));
      this.ws.addEventListener('close', () => {
        this.closed = true;
        resolve(false);
        this.end('closed');
      });
    });
    this.ws.addEventListener('message', (event) => this.receive(event as MessageEvent));
  }

  /** Sends one turn frame; resolves with the turn's outcome (never rejects). */
  turn(frame: Record<string, unknown>): Promise<TurnResult> {
    return new Promise((resolve) => {
      const recorder = new TurnRecorder(Date.now());
      if (this.closed) {
        resolve(recorder.finish(Date.now(), 'closed'));
        return;
      }
      const timer = setTimeout(() => this.end('timeout'), this.timeoutMs);
      this.current = { recorder, resolve, timer };
      this.ws.send(JSON.stringify(frame));
    });
  }

  close(): void {
    if (!this.closed) this.ws.close(1000);
  }

  private receive(event: MessageEvent): void {
    const at = Date.now();
    const frame = parseFrame(event.data);
    if (!frame) return;
    const { missed, outOfOrder } = this.seqs.observe(frame.seq);
    this.missed += missed;
    if (outOfOrder) this.outOfOrder += 1;
    if (this.current?.recorder.add(frame, at)) this.end();
  }

  private end(gaveUp?: 'timeout' | 'closed'): void {
    const turn = this.current;
    if (!turn) return;
    this.current = undefined;
    clearTimeout(turn.timer);
    turn.resolve(turn.recorder.finish(Date.now(), gaveUp));
  }
}
