/**
 * HTTP/2 without TLS (h2c, "prior knowledge") on a service's own port, beside HTTP/1.1.
 *
 * Why: a turn streams its frames over two hops (runtime → gateway, llm-proxy → runtime), each frame
 * a write of its own. Over HTTP/1.1 every turn holds a connection of its own, so the frames of 100
 * turns leaving in one tick are 100 socket writes, and 100 reads on the other side. Over one HTTP/2
 * connection the streams' frames of a tick leave in one write (node's session sends what its
 * streams queued once per tick). Measured on this machine kind (2026-12-07, 100 SSE streams of 13
 * frames each in 30-ms ticks, undici client): server CPU per stream 0.59 → 0.33 ms, client
 * 0.64 → 0.49 ms; the server's kernel time 0.25 → 0.04 ms.
 *
 * How: the port's server stays fastify's HTTP/1.1 server (health checks, Prometheus, browsers,
 * WebSocket upgrades, curl all keep working); a connection whose first bytes are the HTTP/2
 * connection preface (`PRI * HTTP/2.0…`) is handed to an HTTP/2 server with the same handler
 * instead. Fastify serves both (its compat-API requests are the same objects to a route). Nothing
 * else reads the bytes: they are put back and node's HTTP/2 session takes them from the socket's
 * buffer, then reads the socket natively (no JS stream between).
 *
 * Shutdown is the HTTP/1.1 server's: `close` and `closeIdleConnections` (fastify's and node's way
 * to end idle keep-alive connections on close) also close the HTTP/2 sessions gracefully (GOAWAY: a
 * session without streams ends at once, one with streams after its last; new streams go elsewhere),
 * `closeAllConnections` destroys them all.
 */
import http from 'node:http';
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import type { FastifyServerOptions } from 'fastify';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** How long a new connection may take to send the bytes that tell its protocol (node's default headers timeout). */
const FIRST_BYTES_TIMEOUT_MS = 60_000;

/** Streams one HTTP/2 connection may carry at once (a turn is a stream: one gateway's turns share a few connections). */
export const H2C_MAX_STREAMS = 1000;

/** `true` when `head` (the first bytes of a connection) begins HTTP/2's preface; `undefined` while they could still be. */
export function isH2cPreface(head: Buffer): boolean | undefined {
  const n = Math.min(head.length, PREFACE.length);
  if (!head.subarray(0, n).equals(PREFACE.subarray(0, n))) return false;
  return n === PREFACE.length ? true : undefined;
}

/**
 * Fastify's `serverFactory`: an HTTP/1.1 server set up as fastify sets up its own (timeouts,
 * keep-alive), which also serves h2c connections on the same port.
 */
export function createH2cCapableServer(handler: Handler, opts: FastifyServerOptions & { http?: http.ServerOptions } = {}): http.Server {
  const h1 = http.createServer(opts.http ?? {}, handler);
  if (opts.keepAliveTimeout !== undefined) h1.keepAliveTimeout = opts.keepAliveTimeout;
  if (opts.requestTimeout !== undefined) h1.requestTimeout = opts.requestTimeout;
  if (opts.connectionTimeout !== undefined) h1.setTimeout(opts.connectionTimeout);
  if (opts.maxRequestsPerSocket) h1.maxRequestsPerSocket = opts.maxRequestsPerSocket;

  const h2 = http2.createServer({ settings: { maxConcurrentStreams: H2C_MAX_STREAMS } }, handler as never);
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on('session', (session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    // a session that fails (the peer reset it, a protocol error) closes its socket; nothing else to do
    session.on('error', () => undefined);
  });

  const [http1Connection] = h1.listeners('connection') as ((socket: Socket) => void)[];
  h1.removeAllListeners('connection');
  h1.on('connection', (socket: Socket) => {
    let head: Buffer | undefined;
    const decided = (): void => {
      clearTimeout(silent);
      socket.removeListener('readable', onReadable);
      socket.removeListener('error', drop);
      socket.removeListener('end', drop);
    };
    // a connection that goes away, fails or stays silent before its first bytes tell its protocol
    const drop = (): void => {
      decided();
      socket.destroy();
    };
    const onReadable = (): void => {
      const chunk = socket.read() as Buffer | null;
      if (chunk === null) return;
      head = head ? Buffer.concat([head, chunk]) : chunk;
      const h2c = isH2cPreface(head);
      if (h2c === undefined) return; // a few bytes of what may be the preface: wait for more
      decided();
      socket.unshift(head);
      if (h2c) h2.emit('connection', socket);
      else http1Connection!.call(h1, socket);
    };
    const silent = setTimeout(drop, FIRST_BYTES_TIMEOUT_MS).unref();
    socket.on('error', drop);
    socket.on('end', drop);
    socket.on('readable', onReadable);
  });

  const close = h1.close.bind(h1);
  h1.close = (callback?: (err?: Error) => void) => {
    for (const session of sessions) session.close();
    return close(callback);
  };
  // fastify and node call this when the server closes: an HTTP/2 session's graceful close ends it
  // at once when it has no stream, and after its last stream otherwise
  const closeIdle = h1.closeIdleConnections.bind(h1);
  h1.closeIdleConnections = () => {
    for (const session of sessions) session.close();
    closeIdle();
  };
  const closeAll = h1.closeAllConnections.bind(h1);
  h1.closeAllConnections = () => {
    for (const session of sessions) session.destroy();
    closeAll();
  };
  return h1;
}
