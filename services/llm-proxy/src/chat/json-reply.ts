/**
 * The JSON reply stage (`stream` not true): every chunk into the answer, then one
 * `chat.completion` object. Until it is sent a failure is still an HTTP error (the error handler
 * answers the OpenAIError's status); a client that left gets nothing.
 */
import type { FastifyReply } from 'fastify';
import type { ProviderEvent } from '../providers/provider.ts';
import { cutConnection, type ChatExchange, type CutEvent } from './exchange.ts';
import { outcomeOf } from './telemetry.ts';

export async function replyJson(x: ChatExchange): Promise<FastifyReply | undefined> {
  const { answer, telemetry, reply, clientGone } = x;
  /** A cut ends the reading; a chunk goes into the answer; forwarded SSE text cannot answer a JSON request. */
  const take = (ev: ProviderEvent): CutEvent | undefined => {
    if (ev.type === 'cut') return ev;
    if (ev.type !== 'chunk') throw new Error(`provider ${x.providerName} sent ${ev.type} text to a non-streaming request`);
    answer.add(ev.chunk);
    return undefined;
  };
  let cut: CutEvent | undefined;
  try {
    for (const ev of x.first) if ((cut = take(ev))) break;
    while (!cut) {
      const next = await x.events.next();
      if (next.done) break;
      cut = take(next.value);
    }
    if (!cut && clientGone.aborted) throw new Error('client disconnected');
  } catch (err) {
    telemetry.finish(outcomeOf(err, clientGone), err);
    if (clientGone.aborted) return reply.hijack();
    throw err;
  }
  if (cut) {
    await cutConnection(x, cut);
    return undefined;
  }
  telemetry.finish('ok');
  return reply.send(answer.completion(x.model));
}
