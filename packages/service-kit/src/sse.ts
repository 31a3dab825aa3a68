/**
 * Server-Sent Events, both ways: writing an SSE response from a fastify route, and reading one
 * (runtime ← llm-proxy, gateway ← runtime) with the tolerant rules of the upstream gateway parser:
 * a blank line ends an event, `event:` names it, `:` lines are heartbeats, anything else is ignored.
 */
import type { FastifyReply } from 'fastify';
import { once } from 'node:events';

export interface SseEvent {
  event: string | undefined;
  data: string;
}

/**
 * Reads an SSE byte stream as runs of whole events: each run is the text that arrived up to its
 * last blank line (CR and CRLF line endings made LF). A proxy forwards a run as it is and parses
 * only the events it must (`sseEventsIn`); one socket read is one run, however many events it holds.
 */
export async function* sseRuns(body: AsyncIterable<Uint8Array | string>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of body) {
    buffer += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
    if (buffer.includes('\r')) {
      // a CR at the very end may be the first half of a CRLF split across reads: keep it for later
      const tail = buffer.endsWith('\r') ? '\r' : '';
      buffer = (tail ? buffer.slice(0, -1) : buffer).replace(/\r\n?/g, '\n') + tail;
    }
    const end = buffer.lastIndexOf('\n\n');
    if (end < 0) continue;
    yield buffer.slice(0, end + 2);
    buffer = buffer.slice(end + 2);
  }
  buffer = (buffer + decoder.decode()).replace(/\r\n?/g, '\n');
  if (buffer) yield buffer;
}

/**
 * The events of a run of SSE text (LF line endings), each with the offset just past it, with the
 * tolerant rules of the upstream gateway parser: a blank line ends an event, `event:` names it,
 * `:` lines are heartbeats, anything else is ignored; a last event without a blank line counts.
 */
export function* sseEventsIn(text: string): Generator<SseEvent & { end: number }> {
  let event: string | undefined;
  let data: string[] = [];
  let pos = 0;
  while (pos < text.length) {
    const nl = text.indexOf('\n', pos);
    const line = text.slice(pos, nl < 0 ? text.length : nl);
    pos = nl < 0 ? text.length : nl + 1;
    if (line === '') {
      if (data.length > 0) yield { event, data: data.join('\n'), end: pos };
      event = undefined;
      data = [];
    } else if (line.startsWith('data:')) {
      data.push(line.slice(line.startsWith('data: ') ? 6 : 5));
    } else if (line.startsWith('event:')) {
      event = line.slice(6).trim();
    } // `:` heartbeat comments and unknown fields are skipped
  }
  if (data.length > 0) yield { event, data: data.join('\n'), end: pos };
}

/** Splits an SSE byte stream into events. */
export async function* parseSse(body: AsyncIterable<Uint8Array | string>): AsyncGenerator<SseEvent> {
  for await (const run of sseRuns(body)) {
    for (const { event, data } of sseEventsIn(run)) yield { event, data };
  }
}

export interface SseWriter {
  /** Writes one `data:` event (objects are JSON-encoded); resolves when the socket can take more. */
  send(data: unknown, event?: string): Promise<void>;
  /** Writes SSE text that is already framed (whole events), as it is. */
  raw(text: string): Promise<void>;
  /** Writes a heartbeat comment line. */
  comment(text: string): Promise<void>;
  /** Ends the response; `last` (whole SSE text) leaves with the terminator, in the same write. */
  end(last?: string): void;
  /** True once the client went away. */
  readonly closed: boolean;
  /** Aborted when the client disconnects. */
  readonly signal: AbortSignal;
}

/**
 * Takes over a fastify reply and starts an SSE response. The headers leave at once unless
 * `flushHeaders` is false: a caller about to write its first event saves a syscall by letting
 * them leave with it.
 */
export function startSse(reply: FastifyReply, extraHeaders: Record<string, string> = {}, { flushHeaders = true } = {}): SseWriter {
  reply.request.streamingResponse = true;
  reply.hijack();
  const res = reply.raw;
  const abort = new AbortController();
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    // HTTP/2 has no connection headers (node refuses them): its streams share a connection anyway
    ...(reply.request.raw.httpVersionMajor === 2 ? {} : { connection: 'keep-alive' }),
    'x-accel-buffering': 'no',
    ...extraHeaders,
  });
  if (flushHeaders) res.flushHeaders();
  // closed: the response ended or the client went away. Asked of the response's events and its
  // `writableEnded` (our end), which both protocols have: an HTTP/2 response has no `destroyed`, and
  // its `writableFinished` turns true when the client resets the stream
  let gone = false;
  const closed = new Promise<void>((resolve) => {
    res.once('close', () => {
      gone = true;
      if (!res.writableEnded) abort.abort(new Error('client disconnected'));
      resolve();
    });
  });
  const write = async (text: string): Promise<void> => {
    if (gone || res.writableEnded) return;
    if (!res.write(text) && !gone) await Promise.race([once(res, 'drain'), closed]);
  };
  return {
    send: (data, event) => write(`${event ? `event: ${event}\n` : ''}data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`),
    raw: write,
    comment: (text) => write(`: ${text}\n\n`),
    end: (last) => {
      if (!res.writableEnded) last && !gone ? res.end(last) : res.end();
    },
    get closed() {
      return abort.signal.aborted || gone;
    },
    signal: abort.signal,
  };
}
