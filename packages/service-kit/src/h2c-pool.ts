/**
 * The connections of a PeerClient that speaks h2c (h2c.ts): undici Clients, each one HTTP/2
 * connection carrying up to `streams` calls at once.
 *
 * Why not undici's Pool: a Pool keeps sending new calls to a connection its peer has told to go
 * away (GOAWAY: the peer is shutting down), and an undici Client opens its next connection only
 * after the last stream of the old one ended. During a rolling restart the new turns of a gateway
 * would wait for the old runtime's longest running turn (up to its shutdown grace period) instead
 * of going to another replica at once, as they do over HTTP/1.1. Here a connection that is told to
 * go away, or that breaks, takes no new call (it finishes its running ones), and a connection older
 * than `ttlMs` is retired the same way, so that calls spread again over replicas that a load
 * balancer in between assigns per connection.
 *
 * A connection can also stall without breaking: a network partition drops its packets, and TCP
 * retransmits them with a backoff that reaches minutes, long after the network healed. Over
 * HTTP/1.1 the call that times out takes its connection with it; here one connection carries many
 * calls, so a call that times out (no headers, or silence in the body, in time) or fails on its
 * socket retires its connection: the next calls go to a new one. And every connection is PINGed
 * every `pingIntervalMs`: one whose last PING is unanswered at the next is reset (undici), so an
 * idle stalled connection is gone before a call would wait on it.
 *
 * A call goes to the oldest live connection with a free stream; with none, to a new connection
 * (up to `connections`), else to the least busy one, which queues it.
 *
 * A peer that turns out to speak only HTTP/1.1 (it answers the HTTP/2 preface with a 400: another
 * program at a URL set for one of ours) before any answer came over h2c: the pool speaks HTTP/1.1 to
 * it from then on (an undici Pool, `connections` at most), the calls that failed on the preface
 * included (the peer never read them as requests; a call whose body was a stream cannot be sent
 * again and fails), and `onHttp1` is told once.
 */
import { Client, Dispatcher, Pool } from 'undici';

export interface H2cPoolOptions {
  /** Calls one connection carries at once. */
  streams: number;
  /** Most connections at once (not counting those finishing after a GOAWAY or their age). */
  connections: number;
  /** How long a connection takes new calls (ms). */
  ttlMs: number;
  /** The undici Client options of each connection (timeouts); h2c is set here. */
  client: Client.Options;
  /** How often each connection is PINGed: one that leaves a PING unanswered until the next is reset (ms). */
  pingIntervalMs: number;
  /** Called once if the peer speaks only HTTP/1.1 and the pool falls back to it. */
  onHttp1?: () => void;
}

interface Connection {
  client: Client;
  born: number;
  running: number;
}

/** The callbacks of undici's dispatch handlers (its API and the older one); those that end a call. */
const CALLBACKS = [
  'onRequestStart',
  'onRequestUpgrade',
  'onResponseStart',
  'onResponseData',
  'onResponseEnd',
  'onResponseError',
  'onConnect',
  'onHeaders',
  'onData',
  'onComplete',
  'onError',
  'onUpgrade',
  'onBodySent',
  'onRequestSent',
  'onResponseStarted',
] as const;
const ENDS = new Set<string>(['onResponseEnd', 'onResponseError', 'onComplete', 'onError']);
const FAILS = new Set<string>(['onResponseError', 'onError']);
const STARTS = new Set<string>(['onResponseStart', 'onHeaders']);
/**
 * Failures of a call that say its connection may be stalled (undici's error codes): no headers or
 * a silent body in time, the socket failed. A call its caller aborted says nothing of the connection.
 */
const STALLED = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_SOCKET']);

/** A request body that can be sent a second time (not a stream, which the first attempt read). */
function resendable(body: Dispatcher.DispatchOptions['body']): boolean {
  return body == null || typeof body === 'string' || body instanceof Uint8Array;
}

export class H2cPool extends Dispatcher {
  private readonly origin: string;
  private readonly opts: H2cPoolOptions;
  private live: Connection[] = [];
  /** Connections that take no new call, until they closed (their running calls end). */
  private readonly retiring = new Map<Client, Promise<void>>();
  private closed = false;
  /** Calls running, on every connection (retiring ones too). */
  private running = 0;
  /** An answer came over h2c: the peer speaks it (no fallback to HTTP/1.1 then). */
  private spokeH2c = false;
  /** The peer speaks only HTTP/1.1: every call goes here. */
  private http1: Pool | undefined;

  constructor(origin: string, opts: H2cPoolOptions) {
    super();
    this.origin = origin;
    this.opts = opts;
  }

  /** Connections taking new calls, calls running on any connection, connections finishing theirs. */
  get stats(): { connections: number; running: number; retiring: number } {
    return { connections: this.live.length, running: this.running, retiring: this.retiring.size };
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    if (this.closed) throw new Error('the pool is closed');
    if (this.http1) return this.http1.dispatch(options, handler);
    const conn = this.pick();
    conn.running++;
    this.running++;
    let ended = false;
    let answered = false;
    // the handler's callbacks, called on the handler itself; the call's end frees its stream
    const wrapped: Record<string, unknown> = {};
    for (const name of CALLBACKS) {
      const fn = (handler as Record<string, unknown>)[name] as ((...a: unknown[]) => unknown) | undefined;
      if (typeof fn !== 'function') continue;
      if (STARTS.has(name)) {
        wrapped[name] = (...args: unknown[]) => {
          answered = true;
          this.spokeH2c = true;
          return fn.apply(handler, args);
        };
      } else if (ENDS.has(name)) {
        wrapped[name] = (...args: unknown[]) => {
          if (!ended) {
            ended = true;
            conn.running--;
            this.running--;
            // (onResponseError's error is its second argument, onError's its first)
            const err = FAILS.has(name) ? args.find((a) => a instanceof Error) : undefined;
            const code = (err as { code?: string } | undefined)?.code ?? '';
            if (STALLED.has(code)) this.retire(conn);
            // the HTTP/2 preface refused before anything came over h2c: the call again over HTTP/1.1
            if (code === 'ERR_HTTP2_ERROR' && !answered && !this.spokeH2c && !this.closed) {
              const pool = this.fallBackToHttp1();
              if (resendable(options.body)) return pool.dispatch(options, handler);
            }
          }
          return fn.apply(handler, args);
        };
      } else wrapped[name] = fn.bind(handler);
    }
    return conn.client.dispatch(options, wrapped as Dispatcher.DispatchHandler);
  }

  /** The HTTP/1.1 pool every call goes to from now on; the h2c connections are closed. */
  private fallBackToHttp1(): Pool {
    if (!this.http1) {
      this.http1 = new Pool(this.origin, { ...this.opts.client, connections: this.opts.connections });
      for (const conn of [...this.live]) this.retire(conn);
      this.opts.onHttp1?.();
    }
    return this.http1;
  }

  private pick(): Connection {
    const now = Date.now();
    for (const conn of this.live) if (now - conn.born > this.opts.ttlMs) this.retire(conn);
    const free = this.live.find((c) => c.running < this.opts.streams);
    if (free) return free;
    if (this.live.length < this.opts.connections) return this.open();
    return this.live.reduce((a, b) => (b.running < a.running ? b : a));
  }

  private open(): Connection {
    const client = new Client(this.origin, {
      ...this.opts.client,
      allowH2: true,
      useH2c: true,
      h2Options: { useH2c: true, maxConcurrentStreams: this.opts.streams, pingInterval: this.opts.pingIntervalMs },
    } as Client.Options);
    const conn: Connection = { client, born: Date.now(), running: 0 };
    // told to go away, or broken: no new calls; the running ones finish or fail on their own
    client.on('disconnect', () => this.retire(conn));
    client.on('connectionError', () => this.retire(conn));
    this.live.push(conn);
    return conn;
  }

  private retire(conn: Connection): void {
    const at = this.live.indexOf(conn);
    if (at < 0) return;
    this.live.splice(at, 1);
    const { client } = conn;
    this.retiring.set(
      client,
      client
        .close()
        .catch(() => undefined)
        .finally(() => this.retiring.delete(client)),
    );
  }

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    this.closed = true;
    for (const conn of [...this.live]) this.retire(conn);
    const closed = Promise.all([...this.retiring.values(), this.http1?.close()]).then(() => undefined);
    if (!callback) return closed;
    void closed.then(callback);
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(a?: Error | null | (() => void), b?: () => void): Promise<void> | void {
    this.closed = true;
    const err = typeof a === 'function' ? null : (a ?? null);
    const callback = typeof a === 'function' ? a : b;
    const clients = [...this.live.splice(0).map((c) => c.client), ...this.retiring.keys()];
    const destroyed = Promise.all([...clients, ...(this.http1 ? [this.http1] : [])].map((c) => c.destroy(err).catch(() => undefined))).then(
      () => undefined,
    );
    if (!callback) return destroyed;
    void destroyed.then(callback);
  }
}
