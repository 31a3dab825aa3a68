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

/** Splits an SSE byte stream into events. */
export async function* parseSse(body: AsyncIterable<Uint8Array | string>): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder();
  let buffer = '';
  let event: string | undefined;
  let data: string[] = [];
  const flush = (): SseEvent | undefined => {
    const out = data.length > 0 ? { event, data: data.join('\n') } : undefined;
    event = undefined;
    data = [];
    return out;
  };
  for await (const chunk of body) {
    buffer += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      let line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line === '') {
        const ev = flush();
        if (ev) yield ev;
      } else if (line.startsWith(':')) {
        // heartbeat comment
      } else if (line.startsWith('data:')) {
        data.push(line.slice(line.startsWith('data: ') ? 6 : 5));
      } else if (line.startsWith('event:')) {
        event = line.slice(6).trim();
      }
    }
  }
  buffer += decoder.decode();
  if (buffer.startsWith('data:')) data.push(buffer.slice(buffer.startsWith('data: ') ? 6 : 5));
  const last = flush();
  if (last) yield last;
}

export interface SseWriter {
  /** Writes one `data:` event (objects are JSON-encoded); resolves when the socket can take more. */
  send(data: unknown, event?: string): Promise<void>;
  /** Writes a heartbeat comment line. */
  comment(text: string): Promise<void>;
  end(): void;
  /** True once the client went away. */
  readonly closed: boolean;
  /** Aborted when the client disconnects. */
  readonly signal: AbortSignal;
}

/** Takes over a fastify reply and starts an SSE response. */
export function startSse(reply: FastifyReply, extraHeaders: Record<string, string> = {}): SseWriter {
  reply.request.streamingResponse = true;
  reply.hijack();
  const res = reply.raw;
  const abort = new AbortController();
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
    ...extraHeaders,
  });
  res.flushHeaders();
  const onClose = (): void => {
    if (!res.writableFinished) abort.abort(new Error('client disconnected'));
  };
  res.on('close', onClose);
  const write = async (text: string): Promise<void> => {
    if (res.destroyed || res.writableEnded) return;
    if (!res.write(text)) await Promise.race([once(res, 'drain'), once(res, 'close')]);
  };
  return {
    send: (data, event) => write(`${event ? `event: ${event}\n` : ''}data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`),
    comment: (text) => write(`: ${text}\n\n`),
    end: () => {
      if (!res.writableEnded) res.end();
    },
    get closed() {
      return abort.signal.aborted || res.destroyed;
    },
    signal: abort.signal,
  };
}
