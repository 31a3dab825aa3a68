/**
 * The first-output stage: nothing is sent to the client before the provider's first output, so a
 * failure until then still chooses the HTTP status (the OpenAIError's own; an upstream provider
 * may retry it meanwhile). Reads the provider's events up to the first that carries output
 * (content, a tool call, or usage), is of another kind than a chunk, or ends the stream.
 */
import { hasOutput } from '../providers/openai-upstream.ts';
import type { ProviderEvent } from '../providers/provider.ts';

/** The events up to and with the first output; rejects with the provider's error when it fails first. */
export async function awaitFirstOutput(events: AsyncGenerator<ProviderEvent, void, undefined>): Promise<ProviderEvent[]> {
  const first: ProviderEvent[] = [];
  for (;;) {
    const next = await events.next();
    if (next.done) return first;
    first.push(next.value);
    if (next.value.type !== 'chunk' || hasOutput(next.value.chunk) || next.value.chunk.usage) return first;
  }
}
