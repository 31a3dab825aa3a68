/**
 * The chat journey's script, shared by the k6 script and the Node driver (pure: no imports): the
 * messages a conversation sends (answers scripted with the mock LLM's directives), what the IDE
 * answers the tools it runs, and the frame numbering check (`seq` is consecutive per session: a
 * jump is missed frames, a number not above the last one is out of order).
 */

/** Turns one user message may lead to (the message, tool results, approvals) before it is given up. */
export const MAX_TURNS_PER_MESSAGE = 6;

/**
 * The i-th message of a conversation. The first routes the session to the coder agent; the second
 * asks for a read_file call; the third for a write_file call, which needs approval by default.
 */
export function userMessage(i: number): string {
  switch (i) {
    case 0:
      return 'Please implement a linked list in TypeScript [[mock:words 20]]';
    case 1:
      return 'Read the current file first [[mock:tool_call read_file {"path":"src/list.ts"}]]';
    case 2:
      return 'Now save the list [[mock:tool_call write_file {"path":"src/list.ts","content":"export class List {}"}]]';
    default:
      return `One more thing about the list (${i + 1}) [[mock:words 20]]`;
  }
}

/** What the IDE answers a tool call it ran. */
function toolResult(tool: string | undefined): unknown {
  return tool === 'read_file' ? { content: 'export class List<T> { items: T[] = []; }' } : { success: true };
}

/**
 * What the IDE sends after a turn's final frame: nothing more (`answered`: the assistant answered
 * the message), the answer to a tool call (approve first when it needs approval, else its result),
 * or `undefined` when the turn ended otherwise (an error): the message is given up.
 */
export function nextTurnFrame(final: {
  type: string;
  call_id?: string;
  tool_name?: string;
  requires_approval?: boolean;
}): 'answered' | ({ type: 'hitl_decision' | 'tool_result'; call_id: string } & Record<string, unknown>) | undefined {
  if (final.type === 'assistant_message') return 'answered';
  if (final.type !== 'tool_call' || typeof final.call_id !== 'string') return undefined;
  return final.requires_approval
    ? { type: 'hitl_decision', call_id: final.call_id, decision: 'approve' }
    : { type: 'tool_result', call_id: final.call_id, result: toolResult(final.tool_name) };
}

/** The seq numbers of one session, from a fresh session (the first frame is 1). */
export class SeqTracker {
  last: number;

  constructor(last = 0) {
    this.last = last;
  }

  /** Frames missed before this one, and whether it came out of order. Frames without a seq (pong, gateway errors) are not numbered. */
  observe(seq: unknown): { missed: number; outOfOrder: boolean } {
    if (typeof seq !== 'number' || !Number.isFinite(seq)) return { missed: 0, outOfOrder: false };
    if (seq <= this.last) return { missed: 0, outOfOrder: true };
    const missed = seq - this.last - 1;
    this.last = seq;
    return { missed, outOfOrder: false };
  }
}
