/**
 * Protocol-level heartbeats for every WebSocket of the gateway, on one shared timer (upstream's
 * uvicorn pinged every 20 s and gave 20 s to answer). A client silent for the heartbeat interval
 * gets a ping; one that then answers nothing (no pong, no frame) within the close timeout is
 * terminated as dead, counted (`gateway_ws_dead_peers_total`) and reported to its connection.
 * One sweep over a map every few seconds keeps 10,000 idle sockets cheap: no timer per socket, and
 * no closure either: every socket shares the same listeners, which find their peer by the socket.
 *
 * A peer is judged on what this process could read: a late ping marks it overdue, and it is
 * terminated at a later sweep only if it stayed silent in between. Between two sweeps (timers)
 * the event loop reads the sockets, so a pong that arrived while this process was stalled (GC, a
 * saturated CPU) is seen before the verdict: a stall never terminates healthy peers wholesale.
 */
import type { WebSocket } from 'ws';

interface Peer {
  lastSeen: number;
  /** When the unanswered ping left; undefined while nothing is awaited. */
  pingedAt: number | undefined;
  /** The ping was late at a sweep: terminated at the next sweep unless it speaks before. */
  overdue: boolean;
  onDead: () => void;
}

export interface HeartbeatOptions {
  /** Silence before a ping (ms); 0 turns heartbeats off. */
  intervalMs: number;
  /** Time a pinged peer has to answer (ms). */
  timeoutMs: number;
  metrics: { deadPeers: { inc(): void } };
  /** false: no timer, `sweep` is called by the owner (tests drive the clock themselves). */
  timer?: boolean;
}

export class Heartbeat {
  private readonly peers = new Map<WebSocket, Peer>();
  private readonly opts: HeartbeatOptions;
  private timer: NodeJS.Timeout | undefined;
  /** Listeners shared by every socket (`this` is the socket that emitted). */
  private readonly alive: (this: WebSocket) => void;
  private readonly untrack: (this: WebSocket) => void;

  constructor(opts: HeartbeatOptions) {
    this.opts = opts;
    const peers = this.peers;
    this.alive = function alive(this: WebSocket): void {
      const peer = peers.get(this);
      if (!peer) return;
      peer.lastSeen = performance.now();
      peer.pingedAt = undefined;
      peer.overdue = false;
    };
    this.untrack = function untrack(this: WebSocket): void {
      peers.delete(this);
    };
  }

  /** Sockets being watched. */
  get size(): number {
    return this.peers.size;
  }

  /** Watches a socket until it closes; `onDead` runs just before a silent one is terminated. */
  track(socket: WebSocket, onDead: () => void): void {
    if (this.opts.intervalMs <= 0) return;
    socket.on('pong', this.alive);
    socket.on('ping', this.alive);
    socket.on('message', this.alive);
    socket.on('close', this.untrack); // a socket closes once: `on` spares the wrapper `once` makes
    this.peers.set(socket, { lastSeen: performance.now(), pingedAt: undefined, overdue: false, onDead });
    if (this.opts.timer === false) return;
    this.timer ??= setInterval(() => this.sweep(), Math.max(10, Math.min(this.opts.intervalMs, this.opts.timeoutMs) / 4)).unref();
  }

  /**
   * One pass: pings the peers silent for an interval, marks the ones whose ping timed out, and
   * terminates the ones marked at an earlier pass that have not spoken since.
   */
  sweep(now = performance.now()): void {
    for (const [socket, peer] of this.peers) {
      if (socket.readyState !== socket.OPEN) continue;
      if (peer.pingedAt !== undefined) {
        if (now - peer.pingedAt < this.opts.timeoutMs) continue;
        if (!peer.overdue) {
          peer.overdue = true; // judged at the next sweep, after the event loop has read its socket
          continue;
        }
        this.peers.delete(socket);
        this.opts.metrics.deadPeers.inc();
        peer.onDead();
        socket.terminate();
      } else if (now - peer.lastSeen >= this.opts.intervalMs) {
        peer.pingedAt = now;
        socket.ping();
      }
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.peers.clear();
  }
}
