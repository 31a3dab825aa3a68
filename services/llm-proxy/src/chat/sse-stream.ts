/**
 * The SSE stream stage (`stream: true`): the first output is at hand, so the headers, the opener
 * and it leave together; then every event as it comes, and `data: [DONE]` at the end. From here a
 * failure can only end the stream: a last `data: {"error":{…}}` event and no `[DONE]` (nothing
 * when the client is gone).
 *
 * Chunks are written as the provider gave them (`raw`, when it kept the upstream's JSON), without
 * their usage unless `stream_options.include_usage`; an upstream's SSE text is forwarded as it is.
 * After the first output token, what is written within one event-loop turn leaves in one write,
 * or, when the client asked for a write interval (WRITE_INTERVAL_HEADER: the runtime, which gathers
 * tokens into frames at that interval anyway), what came within the interval; the end flushes at once.
 */
import { startSse } from '@codelab/service-kit';
import { OpenAIError } from '../errors.ts';
import type { ProviderEvent } from '../providers/provider.ts';
import { cutConnection, type ChatExchange, type CutEvent } from './exchange.ts';
import { outcomeOf } from './telemetry.ts';

export async function streamSse(x: ChatExchange): Promise<void> {
  const { answer, telemetry, reply, clientGone } = x;
  const res = reply.raw;
  const sse = startSse(reply, {}, { flushHeaders: false });
  const includeUsage = x.includeUsage;
  const interval = x.writeIntervalMs;
  if (interval > 0) telemetry.writeInterval(interval);
  /** Socket writes so far: the first output's, then one per batch flushed on its own (the end's comes last). */
  let writes = 1;
  /** The batch being gathered (the socket is corked): cancels its flush, which the end does instead. */
  let batch: (() => void) | undefined;
  const uncork = (): void => {
    batch = undefined;
    writes++;
    res.uncork();
  };
  const cork = (): void => {
    if (!telemetry.firstOutputSent || batch) return;
    res.cork();
    if (interval > 0) {
      const timer = setTimeout(uncork, interval);
      batch = () => clearTimeout(timer);
    } else {
      const immediate = setImmediate(uncork);
      batch = () => clearImmediate(immediate);
    }
  };
  /** The end writes what the batch holds: its own flush must not uncork the socket again later. */
  const dropBatch = (): void => {
    batch?.();
    batch = undefined;
  };
  /** What the batch holds leaves now (before a cut, which waits for what was written). */
  const flushBatch = (): void => {
    if (!batch) return;
    batch();
    uncork();
  };
  let cutOff = false;
  /** Writes one event; answers a cut instead. */
  const write = async (ev: ProviderEvent): Promise<CutEvent | undefined> => {
    if (ev.type === 'cut') return ev;
    if (ev.type === 'sse') {
      answer.addForwarded(ev.usage, ev.finish);
      telemetry.forwarded(ev.events);
      cork();
      await sse.raw(ev.text);
      return undefined;
    }
    let { chunk, raw } = ev;
    answer.add(chunk);
    if (chunk.usage && !includeUsage) {
      if (!chunk.choices?.length) return undefined;
      chunk = { ...chunk, usage: undefined };
      raw = undefined;
    }
    cork();
    await sse.send(raw ?? chunk);
    const delta = chunk.choices?.[0]?.delta;
    if (delta && (delta.content || delta.tool_calls?.length)) telemetry.outputSent();
    return undefined;
  };

  try {
    let cut: CutEvent | undefined;
    // the headers, the opener and the first output leave in one syscall
    res.cork();
    try {
      for (const ev of x.first) if ((cut = await write(ev))) break;
    } finally {
      res.uncork();
    }
    while (!cut) {
      if (sse.closed) throw new Error('client disconnected');
      const next = await x.events.next();
      if (next.done) break;
      cut = await write(next.value);
    }
    if (cut) {
      cutOff = true;
      flushBatch();
      return await cutConnection(x, cut);
    }
    if (sse.closed || clientGone.aborted) throw new Error('client disconnected');
    // [DONE], what is still corked and the chunked terminator leave in one write
    dropBatch();
    sse.end('data: [DONE]\n\n');
    telemetry.streamCompleted();
    telemetry.finish('ok');
  } catch (err) {
    const gone = sse.closed || clientGone.aborted;
    telemetry.finish(gone ? 'client_disconnected' : outcomeOf(err, clientGone), err);
    if (!gone) {
      if (!(err instanceof OpenAIError)) x.log.error({ err }, 'stream failed');
      await sse.send(
        (err instanceof OpenAIError
          ? err
          : new OpenAIError('LLMP_ERR_INTERNAL', 'The server had an error while processing your request.')
        ).toJSON(),
      );
    }
  } finally {
    dropBatch();
    sse.end();
    if (!cutOff) telemetry.streamWritten(writes + 1);
  }
}
