/**
 * Reading what the runtime answers on the WebSocket's behalf: the chunks of an SSE stream (a turn,
 * a replay), each parsed and as the raw JSON text to forward unchanged; and the code and text of an
 * error answer (`{ error: { code, message } }`, or anything else).
 */
import type { FastifyBaseLogger } from 'fastify';
import { sseEventsIn, sseRuns } from '@codelab/service-kit';
import type { StreamChunk } from '@codelab/protocol';

/** The stream's chunks, until it ends (or `[DONE]`, `event: done`); chunks that are not JSON are logged and skipped. */
export async function* runtimeChunks(
  body: AsyncIterable<Uint8Array | string>,
  log: FastifyBaseLogger,
): AsyncGenerator<{ chunk: StreamChunk; raw: string }> {
  // runs of whole events (one per socket read), each parsed here: one async step per read, not per event
  for await (const run of sseRuns(body)) {
    for (const ev of sseEventsIn(run)) {
      if (ev.data === '[DONE]' || ev.event === 'done') return;
      let chunk: StreamChunk;
      try {
        chunk = JSON.parse(ev.data) as StreamChunk;
      } catch {
        log.warn({ data: ev.data.slice(0, 200) }, 'runtime sent a chunk that is not JSON; skipped');
        continue;
      }
      yield { chunk, raw: ev.data };
    }
  }
}

/** The runtime's error code (when it gave one) and a short text, from an error answer's body. */
export function runtimeError(body: unknown): { code: string | undefined; detail: string } {
  let parsed = body;
  if (typeof body === 'string') {
    try {
      parsed = JSON.parse(body);
    } catch {
      return { code: undefined, detail: body.slice(0, 300) };
    }
  }
  const error = (parsed as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  const code = typeof error?.code === 'string' ? error.code : undefined;
  const detail = typeof error?.message === 'string' ? error.message : JSON.stringify(parsed ?? '').slice(0, 300);
  return { code, detail };
}
