/**
 * One conversation's WebSocket, kept open: when it drops without the user closing it, it reconnects
 * with exponential backoff and `?last_seq=<highest seq seen>`, so the gateway replays what was
 * missed; frames whose seq was already delivered are dropped, so the transcript has no gap and no
 * repeat. The token goes in the URL (`access_token`): browsers cannot set headers on a WebSocket.
 */
import { freshAccessToken, refreshNow } from '../auth/auth-session.ts';
import { gatewayWsOrigin } from '../config.ts';
import { type ClientFrame, type ServerFrame, parseServerFrame } from './frames.ts';

export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed' | 'refused';

interface ConversationSocketEvents {
  onFrame: (frame: ServerFrame) => void;
  onState: (state: ConnectionState, detail?: string) => void;
}

const CLOSE_UNAUTHORIZED = 4401;
const CLOSE_FORBIDDEN = 4403;
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 15_000;

export class ConversationSocket {
  private readonly sessionId: string;
  private readonly events: ConversationSocketEvents;
  private socket: WebSocket | undefined;
  private lastSeq: number | undefined;
  private readonly seen = new Set<number>();
  private attempts = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  private unauthorizedInARow = 0;

  constructor(sessionId: string, events: ConversationSocketEvents) {
    this.sessionId = sessionId;
    this.events = events;
  }

  start(): void {
    this.stopped = false;
    void this.open('connecting');
  }

  /** Closes for good (the user left the page): no reconnect. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.socket?.close(1000, 'page closed');
    this.socket = undefined;
    this.events.onState('closed');
  }

  /** Sends a frame; false when the socket is not open (the caller keeps the user's input). */
  send(frame: ClientFrame): boolean {
    if (this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  private async open(state: ConnectionState): Promise<void> {
    this.events.onState(state);
    const token = await freshAccessToken();
    if (this.stopped) return;
    if (!token) {
      this.events.onState('refused', 'signed out');
      return;
    }
    const query = new URLSearchParams({ access_token: token });
    if (this.lastSeq !== undefined) query.set('last_seq', String(this.lastSeq));
    const socket = new WebSocket(`${gatewayWsOrigin()}/api/v1/ws/${encodeURIComponent(this.sessionId)}?${query}`);
    this.socket = socket;
    socket.onopen = () => {
      this.attempts = 0;
      this.events.onState('open');
    };
    socket.onmessage = (event) => {
      const frame = parseServerFrame(event.data);
      if (frame) this.deliver(frame);
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      if (this.stopped) return;
      this.afterClose(event.code, event.reason);
    };
  }

  private deliver(frame: ServerFrame): void {
    this.unauthorizedInARow = 0; // the gateway took the token
    if (typeof frame.seq === 'number') {
      if (this.seen.has(frame.seq)) return; // already shown (a replay after a reconnect)
      this.seen.add(frame.seq);
      this.lastSeq = Math.max(this.lastSeq ?? 0, frame.seq);
    }
    this.events.onFrame(frame);
  }

  private afterClose(code: number, reason: string): void {
    if (code === CLOSE_FORBIDDEN) {
      this.events.onState('refused', reason || 'This conversation is not yours.');
      return;
    }
    if (code === CLOSE_UNAUTHORIZED) {
      // the token expired or was refused: one refresh, then reconnect; refused twice in a row ends it
      if (++this.unauthorizedInARow > 2) {
        this.events.onState('refused', reason || 'The gateway refused the token.');
        return;
      }
      void refreshNow().then((token) => {
        if (this.stopped) return;
        if (token) void this.open('reconnecting');
        else this.events.onState('refused', 'signed out');
      });
      return;
    }
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.attempts) * (0.5 + Math.random() / 2);
    this.attempts++;
    this.events.onState('reconnecting', `retrying in ${Math.round(delay / 100) / 10} s`);
    this.retryTimer = setTimeout(() => void this.open('reconnecting'), delay);
  }
}
