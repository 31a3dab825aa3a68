/**
 * Reading what an OpenAI-compatible server sends, for the runtime (reading the llm-proxy) and the
 * llm-proxy (reading its upstreams): tool calls assembled from their streamed pieces, and the error
 * of an error body or a mid-stream error event, in the shapes servers actually send. Pure: no I/O.
 */
import type { ToolCall, ToolCallDelta } from './openai.ts';

/**
 * Adds streamed tool-call pieces to `calls`, a sparse array by the pieces' `index`: a call's id and
 * name come first (the name may come in pieces too), its arguments in pieces to concatenate. A piece
 * without a usable index goes to the last call (servers that stream one call may leave it out).
 */
export function addToolCallDeltas(calls: ToolCall[], deltas: readonly ToolCallDelta[] | null | undefined): void {
  for (const d of deltas ?? []) {
    const index = Number.isSafeInteger(d.index) && d.index >= 0 ? d.index : Math.max(calls.length - 1, 0);
    const call = (calls[index] ??= { id: '', type: 'function', function: { name: '', arguments: '' } });
    if (d.id) call.id = d.id;
    if (d.function?.name) call.function.name += d.function.name;
    if (d.function?.arguments) call.function.arguments += d.function.arguments;
  }
}

/** Tool calls assembled across the chunks of one answer (`addToolCallDeltas`), taken once complete. */
export class ToolCallAssembler {
  private calls: ToolCall[] = [];

  add(deltas: readonly ToolCallDelta[] | null | undefined): void {
    addToolCallDeltas(this.calls, deltas);
  }

  /** The calls so far, in index order (and forgets them). */
  take(): ToolCall[] {
    const out = this.calls.filter(Boolean);
    this.calls = [];
    return out;
  }
}

/** An OpenAI error as read: `message` is undefined when the error said none. */
export interface OpenAIErrorFields {
  message: string | undefined;
  type: string | null;
  code: string | null;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
/** A field as text: a string, or a number (`"code": 429`) written out. */
const textOf = (v: unknown): string | undefined => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined);

function fieldsOf(e: Record<string, unknown>): OpenAIErrorFields {
  return { message: textOf(e.message), type: textOf(e.type) ?? null, code: textOf(e.code) ?? null };
}

/**
 * The error a decoded body or stream event carries in its `error` field: OpenAI's
 * `{"error":{"message","type","code"}}`, or a bare `{"error":"text"}` (vLLM, Ollama, …); any other
 * value that is set counts as an error without a message. Undefined when `error` is absent, null,
 * false or empty.
 */
export function openAIErrorOf(value: unknown): OpenAIErrorFields | undefined {
  if (!isObject(value) || !value.error) return undefined;
  const e = value.error;
  if (isObject(e)) return fieldsOf(e);
  return { message: typeof e === 'string' ? e : undefined, type: null, code: null };
}

/**
 * The error of an HTTP error response, from its body text: the OpenAI error it holds (or a
 * top-level `message` / `detail` text, as FastAPI and some proxies answer), else the body text
 * itself, cut at `maxChars`.
 */
export function readOpenAIErrorBody(text: string, maxChars = 300): { message: string; type: string | null; code: string | null } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON: the text is the message */
  }
  const found =
    openAIErrorOf(parsed) ??
    (isObject(parsed) ? { ...fieldsOf(parsed), message: textOf(parsed.message) ?? textOf(parsed.detail) } : undefined);
  return { message: found?.message ?? text.slice(0, maxChars), type: found?.type ?? null, code: found?.code ?? null };
}
