/**
 * The transcript of a conversation as data, and how each event changes it (a pure reducer the page
 * keeps in state): the history loaded first, then what the user sends and the frames that come.
 */
import type { SessionHistory } from '../api/sessions-api.ts';
import { endsTurn, type ServerFrame } from './frames.ts';

type ToolCardState = 'awaiting_decision' | 'awaiting_result' | 'answered' | 'done';

export type TranscriptItem =
  | { kind: 'user'; key: string; text: string }
  | { kind: 'assistant'; key: string; text: string; streaming: boolean; cancelled: boolean; replayed: boolean }
  | { kind: 'agent_switch'; key: string; from: string | null; to: string; reason: string | undefined }
  | {
      kind: 'tool';
      key: string;
      callId: string;
      toolName: string;
      args: Record<string, unknown>;
      requiresApproval: boolean;
      state: ToolCardState;
      /** What happened to it: the decision sent, or the result the history holds. */
      outcome: string | undefined;
    }
  | { kind: 'notice'; key: string; tone: 'error' | 'info'; text: string };

interface Transcript {
  items: TranscriptItem[];
  agent: string | null;
  /** A turn frame was sent and its final frame has not come yet. */
  running: boolean;
  /** The item that started the running turn: late frames of earlier turns go before it. */
  turnStart: string | undefined;
  nextKey: number;
}

type TranscriptEvent =
  | { type: 'history'; history: SessionHistory }
  | { type: 'frame'; frame: ServerFrame }
  | { type: 'user_sent'; text: string }
  | { type: 'tool_answered'; callId: string; outcome: string }
  | { type: 'send_failed'; text: string };

export const emptyTranscript: Transcript = { items: [], agent: null, running: false, turnStart: undefined, nextKey: 1 };

type ToolItem = Extract<TranscriptItem, { kind: 'tool' }>;
type AssistantItem = Extract<TranscriptItem, { kind: 'assistant' }>;
type NewItem = TranscriptItem extends infer T ? (T extends TranscriptItem ? Omit<T, 'key'> : never) : never;

export function transcriptReducer(state: Transcript, event: TranscriptEvent): Transcript {
  switch (event.type) {
    case 'history':
      return fromHistory(event.history, state);
    case 'user_sent': {
      const next = append(state, { kind: 'user', text: event.text });
      return { ...next, running: true, turnStart: next.items.at(-1)?.key };
    }
    case 'tool_answered': {
      const items = state.items.map((i) =>
        i.kind === 'tool' && i.callId === event.callId ? { ...i, state: 'answered' as const, outcome: event.outcome } : i,
      );
      return { ...state, items, running: true, turnStart: state.items.find((i) => i.kind === 'tool' && i.callId === event.callId)?.key };
    }
    case 'send_failed':
      return append({ ...state, running: false }, { kind: 'notice', tone: 'error', text: event.text });
    case 'frame':
      return applyFrame(state, event.frame);
  }
}

function append(state: Transcript, item: NewItem, at?: number): Transcript {
  const withKey = { ...item, key: `i${state.nextKey}` } as TranscriptItem;
  const items = [...state.items];
  items.splice(at ?? items.length, 0, withKey);
  return { ...state, items, nextKey: state.nextKey + 1 };
}

function replace(state: Transcript, key: string, change: (item: TranscriptItem) => TranscriptItem): Transcript {
  return { ...state, items: state.items.map((i) => (i.key === key ? change(i) : i)) };
}

/** The assistant message still streaming in a lane (live frames, or late frames of an earlier turn). */
function streamingAssistant(state: Transcript, replayed: boolean): AssistantItem | undefined {
  for (let i = state.items.length - 1; i >= 0; i--) {
    const item = state.items[i]!;
    if (item.kind === 'assistant' && item.streaming && item.replayed === replayed) return item;
  }
  return undefined;
}

function closeStreaming(state: Transcript, replayed: boolean): Transcript {
  const open = streamingAssistant(state, replayed);
  return open ? replace(state, open.key, (i) => ({ ...i, streaming: false })) : state;
}

function applyFrame(state: Transcript, frame: ServerFrame): Transcript {
  const replayed = frame.metadata?.replayed === true;
  // late frames of an earlier turn belong before the message that started the running turn
  const startIndex = state.turnStart ? state.items.findIndex((i) => i.key === state.turnStart) : -1;
  const at = replayed && state.running && startIndex >= 0 ? startIndex : undefined;
  let next = state;
  switch (frame.type) {
    case 'assistant_message': {
      const open = streamingAssistant(state, replayed);
      const cancelled = frame.metadata?.cancelled === true;
      if (frame.is_final) {
        const text = frame.content ?? open?.text ?? '';
        next = open
          ? replace(state, open.key, (i) => ({ ...i, text, streaming: false, cancelled }))
          : append(state, { kind: 'assistant', text, streaming: false, cancelled, replayed }, at);
      } else if (frame.token) {
        const token = frame.token;
        next = open
          ? replace(state, open.key, (i) => (i.kind === 'assistant' ? { ...i, text: i.text + token } : i))
          : append(state, { kind: 'assistant', text: token, streaming: true, cancelled: false, replayed }, at);
      }
      break;
    }
    case 'tool_call': {
      next = closeStreaming(state, replayed);
      const callId = frame.call_id ?? '';
      const known = next.items.find((i): i is ToolItem => i.kind === 'tool' && i.callId === callId);
      const requiresApproval = frame.requires_approval === true;
      const fields = {
        toolName: frame.tool_name ?? known?.toolName ?? '',
        args: frame.arguments ?? known?.args ?? {},
        requiresApproval,
        state: (requiresApproval ? 'awaiting_decision' : 'awaiting_result') as ToolCardState,
        outcome: known?.outcome,
      };
      next = known ? replace(next, known.key, (i) => ({ ...i, ...fields })) : append(next, { kind: 'tool', callId, ...fields }, at);
      break;
    }
    case 'agent_switched': {
      const to = frame.to_agent ?? (frame.metadata?.to_agent as string | undefined) ?? '?';
      const from = frame.from_agent ?? (frame.metadata?.from_agent as string | undefined) ?? null;
      next = append(state, { kind: 'agent_switch', from, to, reason: frame.reason }, at);
      next = { ...next, agent: to };
      break;
    }
    case 'error': {
      next = closeStreaming(state, replayed);
      const text = frame.content ?? frame.error ?? 'Unknown error';
      next = append(next, { kind: 'notice', tone: 'error', text: frame.code ? `${text} (${frame.code})` : text }, at);
      break;
    }
    default:
      // session_info, cancel_ack, pong, done: nothing to show in the transcript
      break;
  }
  if (endsTurn(frame)) next = { ...next, running: false, turnStart: undefined };
  return next;
}

function parseArguments(text: unknown): Record<string, unknown> {
  if (text && typeof text === 'object' && !Array.isArray(text)) return text as Record<string, unknown>;
  if (typeof text !== 'string') return {};
  try {
    const value = JSON.parse(text) as unknown;
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : { value };
  } catch {
    return { raw: text };
  }
}

/** The stored messages and agent switches, oldest first, as transcript items. */
function fromHistory(history: SessionHistory, state: Transcript): Transcript {
  let next: Transcript = { ...state, items: [], agent: history.current_agent ?? state.agent };
  const switches = [...(history.agent_history ?? [])];
  const addSwitchesBefore = (time: string | undefined) => {
    const until = time === undefined ? Number.POSITIVE_INFINITY : Date.parse(time) || 0;
    while (switches.length && (Date.parse(switches[0]!.switched_at ?? '') || 0) <= until) {
      const s = switches.shift()!;
      next = append(next, { kind: 'agent_switch', from: s.from_agent, to: s.to_agent, reason: s.reason ?? undefined });
    }
  };
  for (const m of history.messages) {
    addSwitchesBefore(m.created_at ?? '');
    if (m.role === 'user') next = append(next, { kind: 'user', text: m.content ?? '' });
    else if (m.role === 'assistant') {
      if (m.content) next = append(next, { kind: 'assistant', text: m.content, streaming: false, cancelled: false, replayed: false });
      for (const call of m.tool_calls ?? [])
        next = append(next, {
          kind: 'tool',
          callId: call.id,
          toolName: call.function?.name ?? '',
          args: parseArguments(call.function?.arguments),
          requiresApproval: false,
          // no result stored yet: the IDE (here: the user) still has to answer it
          state: 'awaiting_result',
          outcome: undefined,
        });
    } else if (m.role === 'tool') {
      const call = next.items.find((i): i is ToolItem => i.kind === 'tool' && i.callId === m.tool_call_id);
      if (call) next = replace(next, call.key, (i) => ({ ...i, state: 'done', outcome: m.content ?? '' }));
    }
  }
  addSwitchesBefore(undefined);
  // a call left unanswered before the last user message belongs to a turn that ended without it
  // (cancelled, interrupted): nothing can answer it any more
  const lastUser = next.items.findLastIndex((i) => i.kind === 'user');
  next = {
    ...next,
    items: next.items.map((item, index) =>
      item.kind === 'tool' && item.state === 'awaiting_result' && index < lastUser
        ? { ...item, state: 'done', outcome: 'No result was stored.' }
        : item,
    ),
  };
  return next;
}
