/**
 * Forwards an upstream's streamed SSE text to the client as it came, run by run (one socket read
 * each), without decoding and re-encoding every chunk. Only the events the proxy must act on are
 * parsed, found by markers that can only appear unescaped as JSON keys:
 * - usage (recorded; removed unless the client asked for `stream_options.include_usage`),
 * - a finish reason (recorded for the span),
 * - an error chunk (ends the stream: what came before it is forwarded, then the route reports it),
 * - `[DONE]` (ends the stream; the route writes its own).
 * The public model name replaces the upstream model's in the forwarded text.
 */
import { openAIErrorOf, type ChatCompletionChunk, type Usage } from '@codelab/protocol';
import { sseEventsIn } from '@codelab/service-kit';

export interface ForwardedRun {
  /** Whole SSE events to write to the client, as they are. */
  text: string;
  /** Number of events in `text`. */
  events: number;
  usage?: Usage;
  finish?: string;
  /** The upstream sent `[DONE]`: nothing after it is kept. */
  done: boolean;
  /** The upstream sent an error chunk (its message): `text` holds what came before it. */
  error?: string;
}

/**
 * The markers, each with what it is searched by: a piece of it of at most 6 characters whose first
 * character is rare in a chunk's JSON (its offset in the marker is derived). V8 finds such a needle
 * by its first character; a marker that starts with `"` (a character every key and value has) or is
 * longer (searched by its last character, again a `"`, `{` or `:`) was four to eight times slower:
 * the four searches were 26 µs of a 100-token stream's text (18.7 KB), these are 6 µs.
 */
const MARKERS = (
  [
    ['[DONE]', '[DONE]'],
    ['"error":', 'rror":'],
    ['"usage":{', 'usage"'],
    ['"finish_reason":"', 'son":"'],
  ] as const
).map(([marker, needle]) => ({ marker, needle, at: marker.indexOf(needle) }));

/** Where MARKERS[m] next starts in `text` at or after `from`; -1 when it does not. */
function findMarker(text: string, m: number, from: number): number {
  const { marker, needle, at } = MARKERS[m]!;
  for (let i = text.indexOf(needle, from + at); i >= 0; i = text.indexOf(needle, i + 1)) {
    if (text.startsWith(marker, i - at)) return i - at;
  }
  return -1;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function countEvents(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n\n'); i >= 0; i = text.indexOf('\n\n', i + 2)) n++;
  return n;
}

export class SsePassthrough {
  private readonly rename: RegExp | undefined;
  private readonly publicModelJson: string;

  private readonly includeUsage: boolean;

  constructor(upstreamModel: string, publicModel: string, includeUsage: boolean) {
    this.includeUsage = includeUsage;
    this.publicModelJson = `"model":${JSON.stringify(publicModel)}`;
    this.rename = upstreamModel === publicModel ? undefined : new RegExp(`"model":\\s*${escapeRegExp(JSON.stringify(upstreamModel))}`, 'g');
  }

  /** One run of whole events (LF line endings), as `sseRuns` reads them. */
  forward(run: string): ForwardedRun {
    const out: ForwardedRun = { text: '', events: 0, done: false };
    const next = MARKERS.map((_, m) => findMarker(run, m, 0));
    let text = '';
    let pos = 0;
    while (pos < run.length) {
      for (let i = 0; i < next.length; i++) if (next[i]! >= 0 && next[i]! < pos) next[i] = findMarker(run, i, pos);
      const hits = next.filter((n) => n >= 0);
      if (!hits.length) {
        text += run.slice(pos);
        break;
      }
      const hit = Math.min(...hits);
      const before = run.lastIndexOf('\n\n', hit);
      const start = before < pos ? pos : before + 2;
      const blank = run.indexOf('\n\n', hit);
      const end = blank < 0 ? run.length : blank + 2;
      text += run.slice(pos, start);
      pos = end;
      const ev = sseEventsIn(run.slice(start, end)).next().value;
      if (!ev) {
        text += run.slice(start, end); // a heartbeat comment that happens to hold a marker
        continue;
      }
      if (ev.data === '[DONE]') {
        out.done = true;
        break;
      }
      let chunk: ChatCompletionChunk;
      try {
        chunk = JSON.parse(ev.data) as ChatCompletionChunk;
      } catch {
        out.error = `sent an event that is not JSON: ${ev.data.slice(0, 100)}`;
        break;
      }
      const error = openAIErrorOf(chunk);
      if (error) {
        out.error = error.message ?? 'unknown error';
        break;
      }
      const finish = chunk.choices?.[0]?.finish_reason;
      if (finish) out.finish = finish;
      if (chunk.usage) {
        out.usage = chunk.usage;
        if (!this.includeUsage) {
          if (chunk.choices?.length) text += `data: ${JSON.stringify({ ...chunk, usage: undefined })}\n\n`;
          continue;
        }
      }
      text += run.slice(start, end);
    }
    out.text = this.rename ? text.replace(this.rename, this.publicModelJson) : text;
    out.events = countEvents(out.text);
    return out;
  }
}
